"""MQTT against a real mosquitto: retained availability and state, legacy status, last will."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import start_service, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"


def test_retained_state_legacy_status_and_last_will(tmp_path: Path, synthetic_clip: Path, mosquitto: Broker):
    config = write_config(tmp_path, synthetic_clip)
    env = {"MQTT_BROKER_URL": mosquitto.url, "MQTT_TOPIC": "printer/status"}
    proc = start_service(config, env)
    watcher = Subscriber(mosquitto.port)
    try:
        watcher.subscribe(f"{BASE}/#")
        watcher.subscribe("printer/status")
        watcher.wait_for(f"{BASE}/available", lambda p: p == b"online")
        # the state is published on a timer from the start: wait for one after the first frame
        state = json.loads(watcher.wait_for(f"{BASE}/printer/state", lambda p: b'"decision"' in p))
        assert state["state"] in ("watching", "suspect", "failure", "cooldown")
        assert state["backend"].startswith(("onnxruntime", "litert"))
        legacy = json.loads(watcher.wait_for("printer/status"))
        assert set(legacy) == {"timestamp", "print_failed", "description"}
        assert isinstance(legacy["print_failed"], bool)

        # a late subscriber still gets the retained state
        late = Subscriber(mosquitto.port)
        late.subscribe(f"{BASE}/printer/state")
        late.wait_for(f"{BASE}/printer/state")
        assert any(retained for _, _, retained in late.messages)
        late.close()

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        watcher.wait_for(f"{BASE}/available", lambda p: p == b"offline", timeout=10)
        after = Subscriber(mosquitto.port)
        after.subscribe(f"{BASE}/available")
        assert after.wait_for(f"{BASE}/available") == b"offline"  # the will was retained
        after.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.close()


def test_clean_stop_says_offline(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker, subscriber: Subscriber
):
    config = write_config(tmp_path, synthetic_clip)
    proc = start_service(config, {"MQTT_BROKER_URL": mosquitto.url})
    try:
        subscriber.subscribe(f"{BASE}/#")
        subscriber.wait_for(f"{BASE}/available", lambda p: p == b"online")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        subscriber.wait_for(f"{BASE}/available", lambda p: p == b"offline", timeout=5)
        subscriber.wait_for(f"{BASE}/printer/state", lambda p: b'"stopped"' in p, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_broker_down_at_start_then_up(tmp_path: Path, synthetic_clip: Path, mosquitto: Broker):
    """The service starts without its broker and connects once the broker appears."""
    mosquitto.stop()
    config = write_config(tmp_path, synthetic_clip)
    proc = start_service(config, {"MQTT_BROKER_URL": mosquitto.url})
    try:
        mosquitto.start()
        sub = Subscriber(mosquitto.port)
        sub.subscribe(f"{BASE}/available")
        sub.wait_for(f"{BASE}/available", lambda p: p == b"online", timeout=20)
        sub.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)


def test_false_alarm_answered_over_mqtt_lowers_the_scores_of_those_frames(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker, subscriber: Subscriber
):
    """The looped synthetic clip makes the uncalibrated model alert; "false alarm" on the alert over MQTT is
    learned at once: the state says the camera's learner holds normal answers and the same frames of the next
    loop score lower than the alert did."""
    config = write_config(tmp_path, synthetic_clip, extra="[cameras.decision]\ncooldown_s = 5\n")
    proc = start_service(config, {"MQTT_BROKER_URL": mosquitto.url})
    try:
        subscriber.subscribe(f"{BASE}/#")
        event = json.loads(
            subscriber.wait_for(f"{BASE}/printer/event", lambda p: b'"score"' in p, timeout=60)
        )
        subscriber.client.publish(f"{BASE}/printer/false_alarm/set", b"PRESS", qos=1)
        learned = json.loads(
            subscriber.wait_for(
                f"{BASE}/printer/state",
                lambda p: b'"learner"' in p and json.loads(p)["learner"]["ok"] > 0,
                30,
            )
        )
        assert learned["learner"]["mode"] in ("guard", "fitted")
        with subscriber.lock:
            start = len(subscriber.messages)
        subscriber.wait_for(
            f"{BASE}/printer/state", lambda p: json.loads(p)["analysed"] > learned["analysed"] + 20
        )
        with subscriber.lock:
            later = [json.loads(m) for t, m, _ in subscriber.messages[start:] if t == f"{BASE}/printer/state"]
        scores = [s["score"] for s in later if isinstance(s.get("score"), float)]
        assert scores and max(scores) < event["score"], (scores, event["score"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
