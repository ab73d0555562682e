"""Configuration: must-fail fixtures name their key and exit 78; env and credentials override."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.config.loader import EX_CONFIG
from appliance.config.sources import HttpSnapshotSourceConfig, RtspSourceConfig
from appliance.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
MUST_FAIL = sorted((FIXTURES / "must_fail").glob("*.toml"))


def expected_key(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    return first.removeprefix("# expect: ").strip()


@pytest.mark.parametrize("fixture", MUST_FAIL, ids=[p.stem for p in MUST_FAIL])
def test_must_fail_fixture_names_the_key(fixture: Path):
    with pytest.raises(ConfigError) as info:
        load_config(fixture, environ={})
    paths = [path for path, _ in info.value.problems]
    assert expected_key(fixture) in paths, info.value.problems


@pytest.mark.parametrize("fixture", MUST_FAIL, ids=[p.stem for p in MUST_FAIL])
def test_check_config_exits_78_and_prints_key(fixture: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", "--config", str(fixture)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert proc.returncode == EX_CONFIG
    assert expected_key(fixture) in proc.stderr


def test_check_config_does_not_touch_hardware(tmp_path: Path):
    """A pin conflict is reported without importing gpiozero (no pin factory is ever created)."""
    code = (
        "import sys; from appliance.cli import main; rc = main(['check-config', '--config', sys.argv[1]]);"
        "assert 'gpiozero' not in sys.modules, 'gpiozero was imported'; raise SystemExit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES / "must_fail" / "pin_used_twice.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "BCM pin 17 is used twice" in proc.stderr


def test_valid_full_config():
    config = load_config(FIXTURES / "valid" / "full.toml", environ={})
    assert [c.name for c in config.cameras] == ["prusa", "ender"]
    assert isinstance(config.cameras[1].source, HttpSnapshotSourceConfig)
    assert config.mqtt.status_topic == "printer/status"
    assert config.hardware.status_led is not None and config.hardware.status_led.blue == 13


def test_secrets_are_not_printed():
    config = load_config(FIXTURES / "valid" / "full.toml", environ={})
    source = config.cameras[1].source
    assert isinstance(source, HttpSnapshotSourceConfig)
    assert "pw" not in repr(source.password)


def test_env_overrides_beat_the_file():
    env = {
        "RTSP_URL": "rtsp://127.0.0.1:8554/other",
        "MQTT_BROKER_URL": "mqtt://127.0.0.1:1883",
        "MQTT_TOPIC": "legacy/status",
        "ANALYSIS_INTERVAL": "7.5",
        "VERBOSE_LOGGING": "true",
        "TEST_MODE": "true",
        "DISCORD_WEBHOOK_URL": "https://discord.example/api/webhooks/1/abc",
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/layerwatch",
        "INFERENCE_PROFILE_ARN": "arn:aws:bedrock:us-west-2:123456789012:inference-profile/x",
        "APP_AWS_PROFILE": "vault-user",
    }
    config = load_config(FIXTURES / "valid" / "full.toml", environ=env)
    source = config.cameras[0].source
    assert isinstance(source, RtspSourceConfig)
    assert source.url == "rtsp://127.0.0.1:8554/other"
    assert source.frozen_after_s == 10  # other keys of the file's rtsp table survive
    assert config.mqtt.broker_url == "mqtt://127.0.0.1:1883"
    assert config.mqtt.status_topic == "legacy/status"
    assert config.service.analysis_interval_s == 7.5
    assert config.service.log_level == "debug"
    assert config.service.test_mode is True
    assert config.notify.discord.webhook_url is not None
    assert config.cloud.bedrock.role_arn.endswith("role/layerwatch")
    assert config.cloud.bedrock.model_id.endswith("inference-profile/x")
    assert config.cloud.bedrock.profile == "vault-user"
    assert config.cloud.bedrock.region == "us-west-2"  # AWS_REGION's default


def test_environment_alone_describes_a_camera(tmp_path: Path):
    config = load_config(
        None, environ={"RTSP_URL": "rtsp://127.0.0.1/x", "LAYERWATCH_CONFIG": str(tmp_path / "none.toml")}
    )
    assert config.cameras[0].source.type == "rtsp"
    assert config.service.analysis_interval_s == 2.0


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_config(FIXTURES / "valid" / "full.toml", environ={"ANALYSIS_INTERVAL": "soon"})
    assert any(
        p == "service.analysis_interval_s" and "env ANALYSIS_INTERVAL" in m for p, m in info.value.problems
    )


def test_bad_boolean_env():
    with pytest.raises(ConfigError) as info:
        load_config(FIXTURES / "valid" / "full.toml", environ={"TEST_MODE": "maybe"})
    assert info.value.problems[0][0] == "env TEST_MODE"


def test_credentials_directory_supplies_secrets(tmp_path: Path):
    (tmp_path / "mqtt_password").write_text("s3cret\n")
    (tmp_path / "discord_webhook_url").write_text("https://discord.example/api/webhooks/2/xyz\n")
    config = load_config(FIXTURES / "valid" / "full.toml", environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "s3cret"
    assert config.notify.discord.webhook_url is not None
    # env still wins over a credential
    env = {
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "DISCORD_WEBHOOK_URL": "https://discord.example/api/webhooks/3/q",
    }
    config = load_config(FIXTURES / "valid" / "full.toml", environ=env)
    assert config.notify.discord.webhook_url.get_secret_value().endswith("/3/q")


def test_schema_has_descriptions():
    from appliance.config.model import LayerwatchConfig

    schema = LayerwatchConfig.model_json_schema()
    service = schema["$defs"]["ServiceConfig"]["properties"]["analysis_interval_s"]
    assert "Seconds" in service["description"] and service["default"] == 2.0


def test_empty_credential_file_is_a_placeholder(tmp_path: Path):
    (tmp_path / "discord_webhook_url").write_text("")
    config = load_config(FIXTURES / "valid" / "full.toml", environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.notify.discord.webhook_url is None


def test_the_example_config_is_valid():
    example = Path(__file__).resolve().parents[1] / "appliance" / "defaults" / "layerwatch.example.toml"
    config = load_config(example, environ={})
    assert config.cameras[0].source.type == "csi"
