"""Each earlier system's documented environment (../prior-art READMEs, as its users have it set)
loads into the configuration the README's migration tables promise, without a TOML file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.config.loader import CREDENTIAL_FILES, load_config
from appliance.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_rtsp_bedrock_detector_environment(tmp_path: Path):
    environ = {
        "RTSP_URL": "rtsp://10.0.0.5:554/stream1",
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/abc",
        "AWS_REGION": "eu-west-1",
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/printer",
        "INFERENCE_PROFILE_ARN": "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/x",
        "VERBOSE_LOGGING": "true",
        "APP_AWS_PROFILE": "default",
        "ANALYSIS_INTERVAL": "30",
        "MQTT_BROKER_URL": "10.0.0.3:1883",
        "MQTT_TOPIC": "printer/status",
        "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml"),
    }
    config = load_config(None, environ)
    assert config.cameras[0].source.type == "rtsp"
    assert config.cloud.type == "bedrock"  # INFERENCE_PROFILE_ARN alone switches the judge on
    assert config.cloud.bedrock.model_id == environ["INFERENCE_PROFILE_ARN"]
    assert config.cloud.bedrock.role_arn == environ["AWS_ROLE_ARN"]
    assert config.cloud.bedrock.region == "eu-west-1"
    assert config.mqtt.broker_url == "mqtt://10.0.0.3:1883"  # accepted without a scheme
    assert config.mqtt.status_topic == "printer/status"
    assert config.service.analysis_interval_s == 30
    assert config.service.log_level == "debug"


def test_monitoring_system_environment(tmp_path: Path):
    environ = {
        "RTSP_URL": "rtsp://10.0.0.5/s",
        "MQTT_BROKER_URL": "mqtt://broker:1883",
        "MQTT_USERNAME": "mlops_user",
        "MQTT_PASSWORD": "pw-123",
        "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml"),
    }
    config = load_config(None, environ)
    assert config.mqtt.username == "mlops_user"
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "pw-123"
    assert not config.telemetry.enabled
    environ["ROUGHNESS_THRESHOLD"] = "75"
    telemetry = load_config(None, environ).telemetry
    assert telemetry.enabled and telemetry.signals["roughness"].max == 75  # their quality threshold
    assert telemetry.sensor_topic == "printing/{printer_id}/sensor" and "nozzle_temp" in telemetry.signals


def test_bridge_environment(tmp_path: Path):
    environ = {
        "RTSP_URL": "rtsp://10.0.0.5/s",
        "OPENROUTER_API_KEY": "sk-or-test",
        "OPENROUTER_BASE_URL": "https://openrouter.example/api/v1",
        "AI_MODEL": "google/gemini-2.5-flash",
        "AI_CONFIDENCE_THRESHOLD": "0.6",
        "PORT": "8081",
        "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml"),
    }
    config = load_config(None, environ)
    assert config.api.listen == "0.0.0.0:8081"  # the bridge's API port, its paths kept (tests/test_api_*)
    assert config.cloud.type == "openai_compatible"
    judge = config.cloud.openai_compatible
    assert judge.api_key is not None and judge.api_key.get_secret_value() == "sk-or-test"
    assert judge.base_url == "https://openrouter.example/api/v1"
    assert judge.model == "google/gemini-2.5-flash"
    assert config.cloud.min_confidence == 0.6


def test_a_judge_chosen_in_the_file_is_kept(tmp_path: Path):
    path = tmp_path / "layerwatch.toml"
    path.write_text('[cloud]\ntype = "openai_compatible"\n')
    config = load_config(path, {"RTSP_URL": "rtsp://h/s", "INFERENCE_PROFILE_ARN": "arn:x"})
    assert config.cloud.type == "openai_compatible"


def test_no_file_and_no_camera_says_the_file_is_missing(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"LAYERWATCH_CONFIG": str(tmp_path / "layerwatch.toml")})
    assert "layerwatch.toml does not exist" in str(caught.value)
    assert "[[cameras]]" not in str(caught.value)


def test_every_credential_the_loader_reads_is_loaded_by_the_unit_and_placed_by_install():
    unit = (REPO / "systemd/layerwatch.service").read_text()
    loaded = set(re.findall(r"^LoadCredential=(\w+):", unit, re.MULTILINE))
    install = (REPO / "scripts/install.sh").read_text()
    placed = set(re.search(r"^CREDENTIALS=\(([^)]*)\)", install, re.MULTILINE).group(1).split())  # type: ignore[union-attr]
    read = (set(CREDENTIAL_FILES) | {"rtsp_url"}) - {"octoprint_api_key", "moonraker_api_key"}
    assert read <= loaded, read - loaded
    assert loaded <= placed, loaded - placed


def test_an_empty_rtsp_url_credential_is_a_placeholder(tmp_path: Path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "rtsp_url").write_text("")
    path = tmp_path / "layerwatch.toml"
    path.write_text('[[cameras]]\nname = "p"\n[cameras.source]\ntype = "rtsp"\nurl = "rtsp://h/s"\n')
    config = load_config(path, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert str(config.cameras[0].source.url) == "rtsp://h/s"


def test_bridge_telegram_and_history_environment(tmp_path: Path):
    """printer-realtime-bridge's Telegram, job message, frame and timelapse variables, as documented."""
    environ = {
        "RTSP_URL": "rtsp://10.0.0.5/s",
        "TELEGRAM_BOT_TOKEN": "123456:ABCDEF-bridge",
        "TELEGRAM_CHAT_ID": "-1001234567890",
        "TELEGRAM_THREAD_ID": "42",
        "PROGRESS_STEP": "10",
        "PHOTO_INTERVAL_SECONDS": "1800",
        "IMAGES_DIR": "/data/images",
        "IMAGE_RETENTION_DAYS": "14",
        "TIMELAPSE_MAX_BYTES": "20971520",
        "TIMELAPSE_TARGET_DURATION_SECONDS": "30",
        "TIMELAPSE_MAX_WIDTH": "960",
        "TIMELAPSE_FPS_CAP": "24",
        "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml"),
    }
    config = load_config(None, environ)
    telegram = config.notify.telegram
    assert telegram.enabled and telegram.bot_token is not None
    assert telegram.bot_token.get_secret_value() == "123456:ABCDEF-bridge"
    assert telegram.chat_id == "-1001234567890" and telegram.message_thread_id == 42
    history = config.history
    assert history.enabled  # the bridge's variables switch the history on, as the bridge always was
    assert history.notify.progress_step == 10 and history.notify.photo_interval_s == 1800
    assert history.images_path(config.service.state_dir) == Path("/data/images")
    assert history.image_retention_days == 14
    timelapse = history.timelapse
    assert (timelapse.max_bytes, timelapse.target_duration_s, timelapse.max_width, timelapse.fps_cap) == (
        20971520, 30, 960, 24,
    )  # fmt: skip


def test_bridge_defaults_match_its_documentation(tmp_path: Path):
    absent = str(tmp_path / "absent.toml")
    environ = {"RTSP_URL": "rtsp://h/s", "TELEGRAM_BOT_TOKEN": "1:a", "TELEGRAM_CHAT_ID": "-1"}
    config = load_config(None, {**environ, "LAYERWATCH_CONFIG": absent})
    history = config.history
    assert history.enabled and history.notify.progress_step == 5 and history.notify.photo_interval_s == 3600
    assert history.image_retention_days == 7
    timelapse = history.timelapse
    assert (timelapse.max_bytes, timelapse.target_duration_s, timelapse.max_width, timelapse.fps_cap) == (
        52428800, 45, 1280, 30,
    )  # fmt: skip
    # the relative IMAGES_DIR default of the bridge ("images") lands under the state folder
    assert load_config(None, {"RTSP_URL": "rtsp://h/s", "IMAGES_DIR": "images",
                              "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml")}).history.images_path(
        Path("/var/lib/layerwatch")) == Path("/var/lib/layerwatch/images")  # fmt: skip


def test_history_off_in_the_file_stays_off_and_bad_values_name_the_variable(tmp_path: Path):
    path = tmp_path / "layerwatch.toml"
    path.write_text('[[cameras]]\nname = "p"\n[cameras.source]\ntype = "rtsp"\nurl = "rtsp://h/s"\n'
                    "[history]\nenabled = false\n")  # fmt: skip
    assert not load_config(path, {"PROGRESS_STEP": "10"}).history.enabled
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"PROGRESS_STEP": "zero"})
    assert "history.notify.progress_step" in str(caught.value) and "env PROGRESS_STEP" in str(caught.value)
