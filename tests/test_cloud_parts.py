"""The cloud judge's parts without a network: verdict parsing, privacy, budget, breaker, config, logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from appliance.cloud.breaker import BreakerState, CircuitBreaker
from appliance.cloud.budget import CallBudget
from appliance.cloud.privacy import crop_to_area, downscale, prepare_upload
from appliance.cloud.verdict import parse_verdict
from appliance.config.cloud import BudgetConfig, CloudConfig, PrivacyConfig
from appliance.config.loader import load_config
from appliance.errors import CloudReplyError, ConfigError
from appliance.service.log_redaction import redact_record, register_secret
from appliance.sources import Frame

GOOD = {"failure": True, "confidence": 0.8, "kind": "spaghetti", "description": "strands everywhere"}


# -- verdicts -------------------------------------------------------------------------------------
def test_a_valid_verdict_plain_or_in_one_code_fence():
    assert parse_verdict(json.dumps(GOOD)).failure is True
    fenced = parse_verdict("```json\n" + json.dumps({**GOOD, "failure": False, "kind": "none"}) + "\n```")
    assert fenced.failure is False and fenced.kind == "none"
    assert parse_verdict(json.dumps({**GOOD, "confidence": 1})).confidence == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes",
        "[true, 0.9]",
        json.dumps({**GOOD, "failure": "true"}),
        json.dumps({**GOOD, "confidence": "0.8"}),
        json.dumps({**GOOD, "confidence": -0.1}),
        json.dumps({**GOOD, "kind": "alien"}),
        json.dumps({**GOOD, "note": "extra"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "description"}),
        json.dumps(GOOD).replace("0.8", "NaN"),
        "Here you go: " + json.dumps(GOOD),
        json.dumps({**GOOD, "description": "x" * 600}),
        "x" * 5000,
    ],
)
def test_anything_else_is_a_reply_error(text: str):
    with pytest.raises(CloudReplyError):
        parse_verdict(text)


# -- privacy --------------------------------------------------------------------------------------
def test_crop_then_downscale_never_enlarges():
    image = np.zeros((480, 640, 3), np.uint8)
    assert crop_to_area(image, (0.25, 0.5, 0.75, 1.0)).shape == (240, 320, 3)
    assert crop_to_area(image, None).shape == image.shape
    assert downscale(image, 320).shape == (240, 320, 3)
    assert downscale(image[:100, :100], 320).shape == (100, 100, 3)


def test_camera_print_area_wins_and_the_upload_is_a_bare_jpeg():
    image = np.zeros((400, 400, 3), np.uint8)
    image[:200, :200] = 255
    config = PrivacyConfig(print_area=(0.5, 0.5, 1.0, 1.0), camera_print_areas={"left": (0.0, 0.0, 0.5, 0.5)})
    left = prepare_upload(Frame(image, time.time(), 0), "left", config)
    other = prepare_upload(Frame(image, time.time(), 0), "right", config)
    assert left[:2] == b"\xff\xd8" and b"Exif" not in left[:64]
    import cv2

    assert cv2.imdecode(np.frombuffer(left, np.uint8), cv2.IMREAD_GRAYSCALE).mean() > 250
    assert cv2.imdecode(np.frombuffer(other, np.uint8), cv2.IMREAD_GRAYSCALE).mean() < 5


# -- budget and breaker ---------------------------------------------------------------------------
def test_budget_windows_roll_and_the_month_resets(tmp_path: Path):
    now = [1_700_000_000.0]  # 2023-11-14 UTC
    config = BudgetConfig(calls_per_hour=2, calls_per_day=3, monthly_spend_usd=1.0, cost_per_call_usd=0.1)
    budget = CallBudget(config, tmp_path / "b.json", clock=lambda: now[0])
    assert budget.reserve() is None and budget.reserve() is None
    assert "last hour" in (budget.reserve() or "")
    now[0] += 3601
    assert budget.reserve() is None
    now[0] += 60
    assert "24 h" in (budget.reserve() or "")
    reloaded = CallBudget(config, tmp_path / "b.json", clock=lambda: now[0])
    assert reloaded.snapshot()["cloud_calls_day"] == 3 and reloaded.spend_usd == pytest.approx(0.3)
    now[0] += 20 * 86400  # next month
    assert reloaded.reserve() is None and reloaded.spend_usd == pytest.approx(0.1)


def test_an_unreadable_ledger_is_reported_and_counting_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    (tmp_path / "b.json").write_text("{not json")
    budget = CallBudget(BudgetConfig(), tmp_path / "b.json")
    assert budget.reserve() is None
    assert "unreadable" in caplog.text
    assert json.loads((tmp_path / "b.json").read_text())["month_calls"] == 1


def test_breaker_opens_half_opens_once_and_closes():
    breaker = CircuitBreaker(failures=2, cooloff_s=10)
    breaker.failure(0, "unreachable")
    assert breaker.state(1) == BreakerState.CLOSED
    breaker.failure(1, "unreachable")
    assert breaker.state(2) == BreakerState.OPEN and not breaker.allow(5)
    assert breaker.allow(12) and not breaker.allow(12)  # one trial call only
    breaker.failure(12, "unreachable")  # trial failed: another cool-off
    assert breaker.state(13) == BreakerState.OPEN and breaker.allow(23)
    breaker.success()
    assert breaker.state(23) == BreakerState.CLOSED
    breaker.trip(30, "credentials")
    assert breaker.state(31) == BreakerState.OPEN and breaker.reason == "credentials"


# -- configuration --------------------------------------------------------------------------------
def test_the_judge_is_off_by_default_and_the_plugin_must_be_complete():
    assert CloudConfig().type == "off"
    with pytest.raises(ValidationError, match="model_id"):
        CloudConfig.model_validate({"type": "bedrock"})
    with pytest.raises(ValidationError, match="print_area"):
        CloudConfig.model_validate({"privacy": {"print_area": [0.5, 0.0, 0.4, 1.0]}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        CloudConfig.model_validate({"bedrock": {"enabled": True}})


def test_config_errors_name_the_cloud_key(tmp_path: Path):
    path = tmp_path / "layerwatch.toml"
    path.write_text(
        '[[cameras]]\nname = "p"\nsource = { type = "replay", path = "." }\n'
        '[cloud]\ntype = "bedrock"\n[cloud.budget]\ncalls_per_hour = -1\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    assert "cloud.budget.calls_per_hour" in str(raised.value)
    path.write_text(
        '[[cameras]]\nname = "p"\nsource = { type = "replay", path = "." }\n[cloud]\ntype = "bedrock"\n'
    )
    config = load_config(path, {"INFERENCE_PROFILE_ARN": "arn:aws:bedrock:us-west-2:1:inference-profile/x"})
    assert config.cloud.type == "bedrock" and config.cloud.bedrock.model_id.endswith("/x")


def test_cloud_off_imports_no_boto3():
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from appliance.config.model import LayerwatchConfig\n"
        "from appliance.service.runner import Service\n"
        "from appliance.service.wiring import ServiceContext, build_judge\n"
        "from appliance.service.commands import CommandQueue\n"
        "ctx = ServiceContext(CommandQueue(), lambda n: {}, [], Path('/tmp'))\n"
        "assert build_judge(LayerwatchConfig(), ctx) is None\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n"
        "print(ctx.telemetry['cloud_state'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.0"


# -- logs -----------------------------------------------------------------------------------------
def test_secret_filter_masks_registered_values_and_credential_shapes():
    register_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    headers = {
        "Authorization": b"AWS4-HMAC-SHA256 Credential=ASIAUNREGISTERED0001/2024",
        "X-Amz-Security-Token": b"FwoGZX",
    }
    body = (
        "<SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>"
        "<SessionToken>IQo</SessionToken>"
    )
    record = logging.LogRecord(
        "botocore.endpoint", logging.DEBUG, __file__, 1, "headers=%s body=%s", (headers, body), None
    )
    redact_record(record)
    message = record.getMessage()
    for leaked in ("ASIAUNREGISTERED0001", "FwoGZX", "wJalrXUtnFEMI", "IQo<"):
        assert leaked not in message
    assert "<SecretAccessKey>***</SecretAccessKey>" in message
