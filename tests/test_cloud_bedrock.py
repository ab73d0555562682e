"""The bedrock judge with real boto3 against the local bedrock-runtime + STS peer (tests/aws_peers.py).

Every request is signed by botocore and its SigV4 signature checked by the peer, so the tests see
which credentials were used. Every test also checks that no key, secret or token reached the log,
with DEBUG captured for every logger, botocore's included.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from botocore.retries import standard

from appliance.cloud import CloudJudge, CloudState, build_backend, create_judge
from appliance.cloud.budget import CallBudget
from appliance.cloud.verdict import SYSTEM_PROMPT, USER_PROMPT
from appliance.config.cloud import CloudConfig
from appliance.config.loader import load_config
from appliance.detector import Detection, Verdict
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext
from appliance.sources import Frame
from tests.aws_peers import (
    CloudPeer,
    assert_no_secrets_logged,
    bedrock_error,
    bedrock_text,
    sts_error,
    verdict_json,
    write_credentials,
)

MODEL = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-haiku"
ROLE = "arn:aws:iam::123456789012:role/layerwatch"
PROFILES = {
    "default": ("AKIADEFAULTPROFILE01", "default-profile-secret-0000000000000000"),
    "vault-user": ("AKIAVAULTUSERKEY0002", "vault-user-profile-secret-111111111111111"),
}
UNCERTAIN = Detection(score=0.55, verdict=Verdict.UNCERTAIN)


@pytest.fixture
def peer(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "urllib3", "appliance"):
        caplog.set_level(logging.DEBUG, logger=name)
    server = CloudPeer()
    yield server
    server.close()
    assert_no_secrets_logged(caplog.records, caplog.text, server.all_secrets())


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def make_judge(tmp_path: Path, peer: CloudPeer, **overrides: Any) -> tuple[CloudJudge, dict[str, float]]:
    credentials = write_credentials(tmp_path / "credentials", PROFILES, peer)
    tree = {
        "type": "bedrock",
        "timeout_s": 5.0,
        "request_timeout_s": 5.0,
        "bedrock": {
            "model_id": MODEL,
            "role_arn": ROLE,
            "profile": "vault-user",
            "credentials_file": str(credentials),
            "endpoint_url": peer.url,
            "sts_endpoint_url": peer.url,
            "max_attempts": 1,
        },
    }
    config = CloudConfig.model_validate(merge(tree, overrides))
    telemetry: dict[str, float] = {}
    budget = CallBudget(config.budget, tmp_path / "state" / "cloud" / "budget.json")
    return CloudJudge(config, build_backend(config), budget, telemetry), telemetry


def frame(width: int = 320, height: int = 240) -> Frame:
    image = np.full((height, width, 3), (200, 60, 20), np.uint8)  # blue-ish (BGR)
    image[: height // 2, width // 2 :] = (0, 0, 255)  # the top-right quarter is red
    return Frame(image, time.time(), 0)


def test_converse_carries_image_and_prompt_and_the_verdict_is_used(tmp_path: Path, peer: CloudPeer):
    judge, telemetry = make_judge(
        tmp_path, peer, privacy={"print_area": [0.5, 0.0, 1.0, 0.5], "max_side_px": 200}
    )
    assert judge.judge("printer", frame(640, 480), UNCERTAIN, "uncertain") is True

    (assume,) = peer.of("assume_role")
    assert assume.signature_ok and assume.access_key == PROFILES["vault-user"][0]
    form = assume.form()
    assert form["Action"] == "AssumeRole" and form["RoleArn"] == ROLE and form["DurationSeconds"] == "3600"
    (converse,) = peer.of("converse")
    issued = peer.issued[0]
    assert converse.signature_ok and converse.access_key == issued["AccessKeyId"]
    assert converse.token == issued["SessionToken"]
    assert converse.path == f"/model/{quote(MODEL, safe='')}/converse"
    body = converse.json()
    assert set(body) == {"messages", "system", "inferenceConfig"}  # nothing but frame and prompt
    assert body["system"] == [{"text": SYSTEM_PROMPT}]
    (message,) = body["messages"]
    assert message["role"] == "user" and message["content"][1] == {"text": USER_PROMPT}
    assert message["content"][0]["image"]["format"] == "jpeg"
    upload = cv2.imdecode(np.frombuffer(converse.image(), np.uint8), cv2.IMREAD_COLOR)
    assert upload.shape == (150, 200, 3)  # the 320x240 print area, downscaled to 200 px
    assert upload[..., 2].mean() > 200 and upload[..., 0].mean() < 40  # only the red print area

    assert telemetry["cloud_calls"] == 1 and telemetry["cloud_verdicts"] == 1
    assert telemetry["cloud_state"] == CloudState.READY
    assert telemetry["cloud_spend_usd"] == pytest.approx(0.003)
    assert telemetry["cloud_agreement"] == 1.0  # score 0.55 leaned towards failure, as the judge said

    peer.converse.append(bedrock_text(verdict_json(False, 0.95)))
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is False
    assert telemetry["cloud_agreement"] == 0.5
    assert len(peer.of("assume_role")) == 1  # the role's credentials are reused while fresh


@pytest.mark.parametrize(
    "answer",
    [
        bedrock_text("The print looks fine to me."),
        bedrock_text('{"failure": "yes", "confidence": 0.9, "kind": "spaghetti", "description": "x"}'),
        bedrock_text(verdict_json(True, 1.7)),
        bedrock_text(verdict_json(True, 0.9, reasoning="extra key")),
        bedrock_text("Sorry, the model cannot answer this question.", stop="guardrail_intervened"),
        bedrock_text("", stop="content_filtered"),
        bedrock_error(400, "ValidationException", "The model does not support images"),
        bedrock_text(verdict_json(True, 0.3)),  # below min_confidence
    ],
    ids=["prose", "string-bool", "confidence", "extra-key", "guardrail", "filtered", "400", "unsure"],
)
def test_malformed_refused_and_rejected_answers_are_no_verdict(tmp_path: Path, peer: CloudPeer, answer: Any):
    judge, telemetry = make_judge(tmp_path, peer)
    peer.converse.append(answer)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert telemetry["cloud_no_verdict"] == 1 and telemetry["cloud_failures"] == 0
    assert telemetry["cloud_state"] == CloudState.READY
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True  # the next answer is used


@pytest.mark.parametrize(
    "error",
    [
        bedrock_error(429, "ThrottlingException", "Too many requests"),
        bedrock_error(503, "ServiceUnavailableException"),
    ],
    ids=["throttling", "503"],
)
def test_throttling_and_503_are_retried_with_growing_waits(
    tmp_path: Path, peer: CloudPeer, error: Any, monkeypatch: pytest.MonkeyPatch
):
    # botocore's standard mode waits rand() * scale * 2**(attempt - 1) s. The scale is 1 s for every
    # error in older botocore (1.35.99 tested); botocore's "new retries" (NEW_RETRIES_ENABLED, on in
    # 1.44.8) keep 1 s for throttling but use 50 ms for other transient errors (5xx). Pin rand() and
    # record the waits botocore computes, so the test holds for both and still sees them slept.
    original = standard.ExponentialBackoff.__init__
    original_delay = standard.ExponentialBackoff.delay_amount
    delays: list[float] = []

    def pinned_jitter(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._random = lambda: 0.15

    def recorded_delay(self: Any, context: Any) -> float:
        delays.append(original_delay(self, context))
        return delays[-1]

    monkeypatch.setattr(standard.ExponentialBackoff, "__init__", pinned_jitter)
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", recorded_delay)
    judge, telemetry = make_judge(tmp_path, peer, bedrock={"max_attempts": 4})
    peer.converse.extend([error, error, error])
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    arrivals = [s.at for s in peer.of("converse")]
    assert len(arrivals) == 4
    scales = getattr(standard.ExponentialBackoff, "_DEFAULT_BACKOFF_CONFIG", {})
    scale = 1.0 if error.status == 429 else scales.get("non_throttling_base_scale", 1.0)
    assert delays == pytest.approx([0.15 * scale, 0.3 * scale, 0.6 * scale])
    waits = np.diff(arrivals)
    assert all(wait >= delay - 0.005 for wait, delay in zip(waits, delays, strict=True)), (waits, delays)
    assert telemetry["cloud_failures"] == 0 and telemetry["cloud_calls"] == 1


def test_the_loop_never_waits_longer_than_the_timeout(tmp_path: Path, peer: CloudPeer):
    judge, telemetry = make_judge(tmp_path, peer, timeout_s=1.0)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True  # credentials fetched
    judge.config.timeout_s = 0.4
    slow = bedrock_text(verdict_json(True))
    slow.delay_s = 1.5
    peer.converse.append(slow)
    started = time.monotonic()
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert time.monotonic() - started < 0.7
    started = time.monotonic()
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None  # still out: not asked again
    assert time.monotonic() - started < 0.1
    assert len(peer.of("converse")) <= 2
    deadline = time.monotonic() + 3
    while telemetry.get("cloud_late", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        telemetry["cloud_timeouts"] == 1 and telemetry["cloud_late"] == 1 and telemetry["cloud_skipped"] == 1
    )
    assert len(peer.of("converse")) == 2
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True


def test_budget_stops_calls_when_spent_and_a_restart_does_not_reset_it(tmp_path: Path, peer: CloudPeer):
    judge, telemetry = make_judge(tmp_path, peer, budget={"calls_per_hour": 2})
    assert [judge.judge("printer", frame(), UNCERTAIN, "uncertain") for _ in range(3)] == [True, True, None]
    assert len(peer.of("converse")) == 2
    assert telemetry["cloud_state"] == CloudState.OVER_BUDGET and telemetry["cloud_calls_hour"] == 2
    restarted, telemetry = make_judge(tmp_path, peer, budget={"calls_per_hour": 2})
    assert restarted.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert len(peer.of("converse")) == 2 and telemetry["cloud_state"] == CloudState.OVER_BUDGET


def test_monthly_spend_estimate_stops_calls(tmp_path: Path, peer: CloudPeer):
    # 0.01 USD per call plus 1,500 input tokens at 0.002 USD/1k: 0.013 USD a call, 0.03 USD a month
    budget = {"cost_per_call_usd": 0.01, "usd_per_1k_input_tokens": 0.002, "monthly_spend_usd": 0.03}
    judge, telemetry = make_judge(tmp_path, peer, budget=budget)
    assert [judge.judge("printer", frame(), UNCERTAIN, "uncertain") for _ in range(3)] == [True, True, None]
    assert telemetry["cloud_spend_usd"] == pytest.approx(0.026)
    assert telemetry["cloud_state"] == CloudState.OVER_BUDGET


def test_breaker_goes_local_only_after_failures_and_retries_after_cooloff(tmp_path: Path, peer: CloudPeer):
    judge, telemetry = make_judge(tmp_path, peer, breaker={"failures": 2, "cooloff_s": 0.5})
    peer.default_converse = bedrock_error(500, "InternalServerException", "boom")
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert telemetry["cloud_state"] == CloudState.UNREACHABLE and telemetry["cloud_failures"] == 2
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert len(peer.of("converse")) == 2  # open: not asked
    time.sleep(0.6)
    peer.default_converse = bedrock_text(verdict_json(True))
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True  # the trial call
    assert telemetry["cloud_state"] == CloudState.READY


def test_unreachable_cloud_leaves_the_decision_local(tmp_path: Path, peer: CloudPeer):
    judge, telemetry = make_judge(tmp_path, peer, bedrock={"endpoint_url": "http://127.0.0.1:9"})
    started = time.monotonic()
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert time.monotonic() - started < 5.0
    assert telemetry["cloud_failures"] == 1 and telemetry["cloud_verdicts"] == 0


def test_short_lived_role_credentials_are_refreshed_before_they_expire(tmp_path: Path, peer: CloudPeer):
    peer.sts_lifetimes_s.append(11 * 60)  # inside botocore's 15-minute advisory refresh window
    judge, _ = make_judge(tmp_path, peer)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    first, second = peer.issued  # refreshed once, then the hour-long credentials last
    signed_by = [s.access_key for s in peer.of("converse")]
    assert signed_by == [first["AccessKeyId"], second["AccessKeyId"], second["AccessKeyId"]]
    expiry = dt.datetime.strptime(first["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert expiry > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)  # the old ones had not expired


@pytest.mark.parametrize("aws_profile", ["default", "not-in-the-file"])
def test_the_profile_is_app_aws_profile_never_aws_profile(
    tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch, aws_profile: str
):
    monkeypatch.setenv("AWS_PROFILE", aws_profile)  # must change nothing
    creds_dir = tmp_path / "credentials.d"
    creds_dir.mkdir()
    write_credentials(creds_dir / "aws_credentials", PROFILES, peer)
    config_file = tmp_path / "layerwatch.toml"
    config_file.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
        '[[cameras]]\nname = "printer"\nsource = { type = "replay", path = "." }\n'
        f'[cloud]\ntype = "bedrock"\n[cloud.bedrock]\nendpoint_url = "{peer.url}"\n'
        f'sts_endpoint_url = "{peer.url}"\n'
    )
    environ = {
        "CREDENTIALS_DIRECTORY": str(creds_dir),
        "APP_AWS_PROFILE": "vault-user",
        "AWS_ROLE_ARN": ROLE,
        "INFERENCE_PROFILE_ARN": MODEL,
        "AWS_REGION": "eu-central-1",
    }
    config = load_config(config_file, environ)
    context = ServiceContext(CommandQueue(), lambda name: {}, ["printer"], tmp_path / "state")
    judge = create_judge(config, context)
    assert judge is not None
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    (assume,) = peer.of("assume_role")
    assert assume.access_key == PROFILES["vault-user"][0] and assume.signature_ok
    assert "/eu-central-1/sts/" in assume.headers["Authorization"]
    (converse,) = peer.of("converse")
    assert "/eu-central-1/bedrock/" in converse.headers["Authorization"] and converse.signature_ok
    assert context.telemetry["cloud_calls"] == 1 and (tmp_path / "state" / "cloud" / "budget.json").is_file()


def test_revoked_credentials_are_refreshed_once_and_used(tmp_path: Path, peer: CloudPeer):
    judge, telemetry = make_judge(tmp_path, peer)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    peer.revoked.add(peer.issued[0]["AccessKeyId"])
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    assert len(peer.of("assume_role")) == 2
    assert [s.access_key for s in peer.of("converse")][-1] == peer.issued[1]["AccessKeyId"]
    assert telemetry["cloud_failures"] == 0


@pytest.mark.parametrize("where", ["sts", "bedrock"])
def test_credentials_refused_after_a_refresh_are_reported_not_retried(
    tmp_path: Path, peer: CloudPeer, where: str
):
    judge, telemetry = make_judge(tmp_path, peer, breaker={"cooloff_s": 60})
    if where == "sts":  # the file's own keys have expired: AssumeRole is refused
        peer.sts.extend(
            [sts_error("ExpiredToken", "The security token included in the request is expired")] * 3
        )
    else:  # the role's keys are revoked as soon as they are issued
        peer.revoke_new = True
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert len(peer.of("assume_role")) == 2  # the first fetch and exactly one refresh
    assert len(peer.of("converse")) == (0 if where == "sts" else 2)
    assert telemetry["cloud_state"] == CloudState.CREDENTIALS and telemetry["cloud_failures"] == 1
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None  # reported, not retried
    assert len(peer.of("assume_role")) == 2 and telemetry["cloud_skipped"] == 1


def test_botocore_debug_output_is_captured_and_masked(tmp_path: Path, peer: CloudPeer, caplog: Any):
    judge, _ = make_judge(tmp_path, peer)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    botocore_debug = [
        r for r in caplog.records if r.name.startswith("botocore") and r.levelno == logging.DEBUG
    ]
    assert botocore_debug, "the secret check must see botocore's DEBUG output"
    assert "<SecretAccessKey>***</SecretAccessKey>" in caplog.text  # the STS answer, masked
    assert "X-Amz-Security-Token" in caplog.text or "x-amz-security-token" in caplog.text
