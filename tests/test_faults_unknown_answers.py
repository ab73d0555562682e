"""Fault suite, issue 33 item 7: an answer naming a frame or alert that does not exist is rejected on
``P/event``, not only in the log.

Against a real ``layerwatch run`` and a real mosquitto on 127.0.0.1: ``label`` with a frame id the camera
never had, ``false_alarm`` with an unknown alert id and ``real_failure`` before any alert each publish a
``command_rejected`` event naming the camera, the frame or alert and the reason; a ``label`` of a real
recent frame (its id from the state JSON) is applied and rejected by nobody.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fault_process import LiveService
from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"


def test_answers_naming_nothing_known_are_rejected_on_the_event_topic(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker
) -> None:
    config = write_config(tmp_path, synthetic_clip, f'[mqtt]\nbroker_url = "{mosquitto.url}"\n')
    watcher = Subscriber(mosquitto.port)
    watcher.subscribe(f"{BASE}/event")
    watcher.subscribe(f"{BASE}/printer/state")
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="answers")
    service = LiveService(config)
    try:
        state = json.loads(watcher.wait_for(f"{BASE}/printer/state", lambda p: b'"frame_id": "' in p
                                            or b'"frame_id":"' in p, timeout=60))  # fmt: skip
        sender.connect("127.0.0.1", mosquitto.port)
        sender.loop_start()
        for topic, payload in (
            ("label/set", "nosuch-12 ok"),
            ("false_alarm/set", "deadbeef0000"),
            ("real_failure/set", "PRESS"),
            ("label/set", f"{state['frame_id']} failure"),
        ):
            sender.publish(f"{BASE}/printer/{topic}", payload, qos=1).wait_for_publish(5)  # fmt: skip
        deadline = time.monotonic() + 20
        rejected: list[dict] = []
        while time.monotonic() < deadline and len(rejected) < 3:
            rejected = [e for e in watcher.json_on(f"{BASE}/event") if e.get("type") == "command_rejected"]
            time.sleep(0.1)
        service.wait_log("frame(s) answered failure by user", timeout=20)
        time.sleep(1.0)  # a fourth rejection would have come by now
        rejected = [e for e in watcher.json_on(f"{BASE}/event") if e.get("type") == "command_rejected"]
        rc, _ = service.terminate()
        alerts = service.log_count("PRINT FAILURE confirmed")  # the generic model may alert on the clip
    finally:
        sender.loop_stop()
        sender.disconnect()
        service.kill()
        watcher.close()
    assert rc == 0
    by_target = {(e.get("frame"), e.get("alert")): e for e in rejected}
    expected = {("nosuch-12", None), (None, "deadbeef0000")} | ({(None, None)} if not alerts else set())
    assert set(by_target) == expected and len(rejected) == len(expected), rejected
    assert all(
        e["camera"] == "printer" and e["command"] == "answer" and e["origin"] == "mqtt" for e in rejected
    )
    assert "not one of the camera's recent frames" in by_target[("nosuch-12", None)]["reason"]
    assert "not one of the camera's alerts" in by_target[(None, "deadbeef0000")]["reason"]
    if not alerts:
        assert by_target[(None, None)]["reason"] == "no alert to answer yet"
