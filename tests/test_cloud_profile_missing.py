"""The RTSP+Bedrock detector's environment with its credentials file absent (``APP_AWS_PROFILE=vault-user``,
the default ``cloud.bedrock.credentials_file``): ``layerwatch run`` turns the judge off, says why in one log
line, on systemd's STATUS= line and as a ``cloud_judge_off`` event on MQTT ``P/event``, and keeps watching
the camera (no ProfileNotFound traceback, no exit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.config.cloud import BedrockConfig
from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import NotifyListener, start_service
from tests.source_fixtures import RtspTestServer

MODEL = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.amazon.nova-lite-v1:0"
pytestmark = [pytest.mark.usefixtures("shipped_model"), pytest.mark.rtsp, pytest.mark.mqtt]


def test_an_absent_credentials_file_turns_the_judge_off_and_the_camera_is_watched(
    tmp_path: Path, rtsp_server: RtspTestServer, mosquitto: Broker
):
    default_file = BedrockConfig().credentials_file
    if default_file.exists():
        pytest.skip(f"{default_file} exists on this machine")
    subscriber = Subscriber(mosquitto.port)
    subscriber.subscribe("layerwatch/layerwatch/event")
    listener = NotifyListener(tmp_path / "notify.sock")
    log = tmp_path / "service.log"
    env = {
        "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml"),  # the environment alone, as that system had
        "LAYERWATCH_STATE_DIR": str(tmp_path / "state"),
        "LAYERWATCH_API_LISTEN": "127.0.0.1:0",
        "NOTIFY_SOCKET": str(listener.path),
        "RTSP_URL": rtsp_server.url,
        "MQTT_BROKER_URL": mosquitto.url,
        "INFERENCE_PROFILE_ARN": MODEL,
        "APP_AWS_PROFILE": "vault-user",
        "AWS_REGION": "us-west-2",
    }
    proc = start_service(tmp_path / "absent.toml", env, log=log)
    try:
        listener.wait_for("READY=1", timeout=60)
        reason = f"bedrock off: AWS profile 'vault-user': credentials file {default_file} does not exist"
        listener.wait_for(reason, timeout=10)  # STATUS=
        event = json.loads(
            subscriber.wait_for("layerwatch/layerwatch/event", lambda p: b"cloud_judge_off" in p, timeout=15)
        )
        assert event["judge"] == "bedrock" and str(default_file) in event["message"]
        # the camera is watched: analysed frames, a frame rate on the STATUS= line
        for _ in range(100):
            listener.messages.clear()
            listener.wait_for("STATUS=printer:", timeout=15)
            status = listener.messages[-1][1]
            if " 0.0 fps" not in status and "camera_offline" not in status and "starting" not in status:
                break
        else:
            raise AssertionError(f"camera not watched: {status!r}")
        assert proc.poll() is None
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
        listener.close()
        subscriber.client.loop_stop()
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text and "ProfileNotFound" not in text
    lines = [line for line in text.splitlines() if "ERROR" in line]
    assert len(lines) == 1 and "cloud judge bedrock off" in lines[0], lines  # one line says why
    assert str(default_file) in lines[0] and "local decisions only" in lines[0]
