"""The real service in-process with a real mosquitto and HTTP stand-ins: a confirmed failure reaches
MQTT, Discord and Telegram once with its evidence; Home Assistant discovery is valid; commands over
MQTT change behaviour (acknowledge -> cooldown and the printer countdown cancelled, monitoring
off -> paused); malformed commands are rejected with an error event."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.service.runner import Service
from tests.alert_scenario import PINNED, PINNED_BACKEND, calibrate, replay_folder, service_toml
from tests.http_peers import serving
from tests.mqtt_fixtures import Broker, Subscriber

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"
HOOK = "/api/webhooks/42/d1sc0rd-s3cr3t-h00k"
TOKEN = "987654:AAF-t3l3gram-s3cret"
KEY = "pr1nt3r-ap1-k3y-123456"
PLATFORM_KEYS = {  # what Home Assistant's MQTT platforms require (besides p and unique_id)
    "binary_sensor": {"state_topic"},
    "sensor": {"state_topic"},
    "switch": {"command_topic"},
    "button": {"command_topic"},
    "image": {"image_topic"},
}


def _valid_topic(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic and "//" not in topic and len(topic) < 256


def check_discovery(payload: dict, cameras: list[str]) -> None:
    """The device-based discovery schema: dev with ids and name, o with name, cmps with p + unique_id."""
    assert payload["dev"]["ids"] and payload["dev"]["name"]
    assert payload["o"]["name"] == "layerwatch"
    assert payload["availability_topic"] == f"{BASE}/available"
    assert (payload["payload_available"], payload["payload_not_available"]) == ("online", "offline")
    components = payload["cmps"]
    unique_ids = [c["unique_id"] for c in components.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    platforms = {c["p"] for c in components.values()}
    assert platforms == set(PLATFORM_KEYS)
    for key, component in components.items():
        assert component["p"] in PLATFORM_KEYS, key
        assert PLATFORM_KEYS[component["p"]] <= set(component), key
        for name, value in component.items():
            if name.endswith("_topic"):
                assert _valid_topic(value) and value.startswith(BASE + "/"), (key, name, value)
    for camera in cameras:
        assert components[f"layerwatch_{camera}_failure"]["device_class"] == "problem"
        assert components[f"layerwatch_{camera}_snapshot"]["image_topic"] == f"{BASE}/{camera}/snapshot"
    buttons = {c["command_topic"] for c in components.values() if c["p"] == "button"}
    assert {f"{BASE}/printer/acknowledge/set", f"{BASE}/test_alarm/set", f"{BASE}/pause_print/set"} <= buttons
    assert f"{BASE}/printer/skip_print/set" in buttons or "printer" not in cameras


def test_alert_everywhere_once_commands_and_discovery(
    tmp_path: Path, mosquitto: Broker, subscriber: Subscriber, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    calibrate(state, tmp_path, detector_config=PINNED)  # on LiteRT these frames raise no alert
    replay = replay_folder(tmp_path / "replay", normal=4, failures=8)
    with serving() as discord, serving() as telegram, serving((204, None, {})) as octoprint:
        extra = (
            f'[mqtt]\nbroker_url = "{mosquitto.url}"\ntelemetry_interval_s = 1\n'
            f'[notify.discord]\nwebhook_url = "{discord.url}{HOOK}"\n'
            f'[notify.telegram]\nbot_token = "{TOKEN}"\nchat_id = "-1001"\napi_url = "{telegram.url}"\n'
            f'[alarm]\ncountdown_s = 3\n[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\n'
            f'api_key = "{KEY}"\npoll_interval_s = 0\n' + PINNED_BACKEND
        )
        path = tmp_path / "layerwatch.toml"
        path.write_text(service_toml(state, replay, extra, loop=True, interval=0.05))
        subscriber.subscribe(f"{BASE}/#")
        subscriber.subscribe("homeassistant/#")
        service = Service(load_config(path, environ={}))
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        try:
            discovery = json.loads(subscriber.wait_for("homeassistant/device/layerwatch/config"))
            check_discovery(discovery, ["printer"])

            event = json.loads(subscriber.wait_for(f"{BASE}/printer/event", timeout=30))
            assert event["type"] == "alert" and event["repeat"] == 0 and event["score"] > 0.5
            assert {"id", "time", "score", "description", "cloud_verdict", "camera"} <= set(event)
            snapshot = subscriber.wait_for(f"{BASE}/printer/snapshot")
            assert snapshot[:2] == b"\xff\xd8"
            subscriber.wait_for(f"{BASE}/printer/state", lambda p: json.loads(p)["state"] == "failure")
            subscriber.wait_for(f"{BASE}/event", lambda p: json.loads(p)["type"] == "printer_countdown")

            # acknowledge over MQTT: cooldown, and the printer countdown is cancelled
            subscriber.client.publish(f"{BASE}/printer/acknowledge/set", "PRESS", qos=1)
            subscriber.wait_for(f"{BASE}/printer/state", lambda p: json.loads(p)["state"] == "cooldown")
            subscriber.wait_for(
                f"{BASE}/event", lambda p: json.loads(p)["type"] == "printer_countdown_cancelled"
            )

            # the Home Assistant switch: monitoring off -> paused, on -> watching again
            subscriber.client.publish(f"{BASE}/printer/monitoring/set", "OFF", qos=1)
            subscriber.wait_for(f"{BASE}/printer/state", lambda p: json.loads(p)["state"] == "paused")
            subscriber.client.publish(f"{BASE}/monitoring/set", "ON", qos=1)
            subscriber.wait_for(
                f"{BASE}/printer/state", lambda p: json.loads(p)["state"] == "cooldown", timeout=5
            )

            # the test alarm for every camera: one "test" event on P/event (camera null), not per camera
            subscriber.client.publish(f"{BASE}/test_alarm/set", "PRESS", qos=1)
            raw = subscriber.wait_for(f"{BASE}/event", lambda p: json.loads(p)["type"] == "test", timeout=5)
            assert json.loads(raw)["camera"] is None

            # malformed commands: rejected with a reason, the service keeps running
            bad = [
                (f"{BASE}/printer/explode/set", "PRESS"),
                (f"{BASE}/monitoring/set", "maybe"),
                (f"{BASE}/nocam/pause/set", ""),
                (f"{BASE}/relay/set", b"\xff\xfe"),
                (f"{BASE}/printer/acknowledge/extra/set", "PRESS"),
            ]
            for topic, payload in bad:
                subscriber.client.publish(topic, payload, qos=1)

            def rejected() -> list[dict]:
                return [e for e in subscriber.json_on(f"{BASE}/event") if e["type"] == "command_rejected"]

            deadline = time.monotonic() + 5
            while len(rejected()) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            reasons = " | ".join(e["reason"] for e in rejected())
            assert "unknown command 'explode'" in reasons and "ON or OFF" in reasons
            assert "unknown camera 'nocam'" in reasons and "not UTF-8" in reasons
            assert "topic must be <base>[/<camera>]/<command>/set" in reasons  # extra levels

            raw = subscriber.wait_for(f"{BASE}/telemetry", lambda p: json.loads(p)["frames_analysed"] > 0)
            telemetry = json.loads(raw)
            assert {"cpu_temperature_c", "fan_duty", "cloud_calls", "cloud_spend_usd"} <= set(telemetry)
            time.sleep(3.2)  # past the 3 s countdown: no pause may follow
            assert thread.is_alive()
        finally:
            service.stop_event.set()
            thread.join(10)
        assert octoprint.posts() == []  # acknowledged in time
        # the alert (with its image), then the test alarm's message
        assert len(discord.posts(HOOK)) == 2 and len(telegram.posts(f"/bot{TOKEN}/sendPhoto")) == 1
        assert discord.posts()[0].parts["files[0]"].data[:2] == b"\xff\xd8"
    events = [e for e in subscriber.json_on(f"{BASE}/printer/event") if e["type"] == "alert"]
    assert len(events) == 1
    subscriber.wait_for(f"{BASE}/available", lambda p: p == b"offline")
    for secret in (HOOK, TOKEN, KEY):
        assert secret not in caplog.text
