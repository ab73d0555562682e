"""The service on a real RTSP camera configured the RTSP+Bedrock detector's way (env only):
decisions flow, a dead camera becomes `camera_offline` on MQTT, and the service recovers by itself."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import NotifyListener, start_service
from tests.source_fixtures import RtspTestServer

pytestmark = [pytest.mark.rtsp, pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

STATE = "layerwatch/layerwatch/printer/state"


def test_env_configured_rtsp_camera_goes_offline_and_recovers(
    tmp_path: Path, rtsp_server: RtspTestServer, mosquitto: Broker
) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    env = {
        "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml"),  # no file: the environment alone
        "LAYERWATCH_STATE_DIR": str(tmp_path / "state"),
        "RTSP_URL": rtsp_server.url,
        "MQTT_BROKER_URL": mosquitto.url,
        "MQTT_TOPIC": "printer/status",
        "ANALYSIS_INTERVAL": "0.2",
        "NOTIFY_SOCKET": str(listener.path),
    }
    proc = start_service(Path(env["LAYERWATCH_CONFIG"]), env)
    watcher = Subscriber(mosquitto.port)
    try:
        watcher.subscribe(STATE)
        watcher.subscribe("printer/status")
        listener.wait_for("READY=1", timeout=30)
        online = json.loads(watcher.wait_for(STATE, lambda p: b'"camera_status":"online"' in p, timeout=20))
        assert online["analysed"] >= 1
        watcher.wait_for("printer/status")

        rtsp_server.kill()
        watcher.wait_for(STATE, lambda p: b'"state":"camera_offline"' in p, timeout=20)
        rtsp_server.start()
        watcher.messages.clear()
        back = json.loads(
            watcher.wait_for(
                STATE, lambda p: b'"camera_status":"online"' in p and b"offline" not in p, timeout=20
            )
        )
        assert back["state"] != "camera_offline"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.close()
        listener.close()
