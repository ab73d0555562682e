"""Nothing lost, nothing doubled: an alert raised while the broker is down arrives once it is back,
and one left in the outbox by a SIGKILLed service arrives once after the restart."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.actions.mqtt.sink import MqttSink
from appliance.config.model import LayerwatchConfig
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext
from tests.alert_scenario import (
    PINNED,
    PINNED_BACKEND,
    calibrate,
    replay_folder,
    service_toml,
    synthetic_alert,
)
from tests.http_peers import serving
from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import start_service

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"
TOKEN = "555000:AAE-k1ll-t3st-t0k3n"


class PersistentSubscriber:
    """A subscriber whose session (and QoS 1 queue) the broker keeps across its own restart."""

    def __init__(self, port: int, topic: str):
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="outbox-test", clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        # set once the broker has acknowledged the subscription: only then does its session queue messages
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message.payload)

    def events(self) -> list[dict]:
        with self.lock:
            return [json.loads(p) for p in self.messages]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_alert_raised_while_the_broker_is_down_arrives_once(tmp_path: Path, mosquitto: Broker):
    config = LayerwatchConfig.model_validate({"mqtt": {"broker_url": mosquitto.url}})
    context = ServiceContext(CommandQueue(), lambda c: {"state": "failure"}, ["printer"], tmp_path)
    listener = PersistentSubscriber(mosquitto.port, f"{BASE}/printer/event")
    sink = MqttSink(config, context)
    sink.start()
    try:
        assert sink.publisher.connected.wait(10)
        assert listener.subscribed.wait(10)  # a fixed sleep here lost the race on a loaded machine
        mosquitto.stop()
        _wait(lambda: not sink.publisher.connected.is_set(), 5)
        alert, result, jpeg = synthetic_alert()
        started = time.monotonic()
        sink.on_alert("printer", alert, result, jpeg)
        # the loop does not wait for the broker (that would be its connect timeout, seconds); the
        # outbox write is fsynced, which a loaded disk can stretch past 0.1 s
        assert time.monotonic() - started < 1.0
        time.sleep(0.5)
        outbox = tmp_path / "outbox" / "mqtt"
        assert [p.name.split("-", 1)[1] for p in outbox.glob("*.json")] == [f"{alert.id}-0.json"]
        mosquitto.start()
        _wait(lambda: any(e["id"] == alert.id for e in listener.events()), 20)
        _wait(lambda: not list(outbox.glob("*.json")), 5)
        time.sleep(1.5)  # room for a duplicate to show up
        assert [e["id"] for e in listener.events()] == [alert.id]
        late = Subscriber(mosquitto.port)
        late.subscribe(f"{BASE}/printer/snapshot")
        assert late.wait_for(f"{BASE}/printer/snapshot") == jpeg  # retained evidence
        late.close()
    finally:
        sink.stop()
        listener.close()


def test_alert_in_the_outbox_survives_sigkill_and_arrives_once(tmp_path: Path, mosquitto: Broker):
    state = tmp_path / "state"
    calibrate(state, tmp_path, detector_config=PINNED)  # on LiteRT these frames raise no alert
    failing = replay_folder(tmp_path / "failing", normal=2, failures=8)
    normal = replay_folder(tmp_path / "normal", normal=6, failures=0)
    mosquitto.stop()  # first run: the broker is down and Telegram answers 503
    with serving((503, {"ok": False, "error_code": 503, "description": "down"}, {})) as telegram:
        extra = (
            f'[mqtt]\nbroker_url = "{mosquitto.url}"\n'
            f'[notify.telegram]\nbot_token = "{TOKEN}"\nchat_id = "7"\napi_url = "{telegram.url}"\n'
            "retry_backoff_s = 0.2\n" + PINNED_BACKEND
        )
        config = tmp_path / "run1.toml"
        config.write_text(service_toml(state, failing, extra, loop=True, interval=0.05))
        first = start_service(config, {"VERBOSE_LOGGING": "true"}, log=tmp_path / "run1.log")
        outbox = state / "outbox"
        try:
            _wait(
                lambda: list((outbox / "mqtt").glob("*.json")) and list((outbox / "telegram").glob("*.json")),
                30,
            )
            telegram.wait_posts(1)  # it tried, and Telegram refused
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; the service said: {(tmp_path / 'run1.log').read_text()[-3000:]}"
            ) from exc
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        first_err = (tmp_path / "run1.log").read_text()
        [stored] = list((outbox / "mqtt").glob("*.json"))
        alert_id = stored.name.split("-")[1]
        assert len(list((outbox / "telegram").glob("*.json"))) == 1

        # the 503 attempts of run 1 (one or a few retries); one sent just before the SIGKILL may still
        # be in the server's hands: count once the number has stopped changing
        refused = -1
        while refused != len(telegram.posts()):
            refused = len(telegram.posts())
            time.sleep(0.5)
        mosquitto.start()
        telegram.default = (200, {"ok": True, "result": {}}, {})
        listener = Subscriber(mosquitto.port)
        listener.subscribe(f"{BASE}/printer/event")
        time.sleep(0.3)
        config2 = tmp_path / "run2.toml"
        config2.write_text(service_toml(state, normal, extra, loop=True, interval=0.05))
        second = start_service(config2, {"VERBOSE_LOGGING": "true"})
        try:
            listener.wait_for(f"{BASE}/printer/event", lambda p: json.loads(p)["id"] == alert_id, timeout=30)
            _wait(lambda: len(telegram.posts(f"/bot{TOKEN}/sendPhoto")) > refused, 10)
            time.sleep(1.5)
        finally:
            second.send_signal(signal.SIGTERM)
            _, second_err = second.communicate(timeout=10)
            listener.close()
        assert [e["id"] for e in listener.json_on(f"{BASE}/printer/event")] == [alert_id]
        photos = telegram.posts(f"/bot{TOKEN}/sendPhoto")
        assert refused >= 1 and len(photos) == refused + 1  # accepted exactly once after the restart
        assert photos[-1].parts["caption"].text.count(alert_id) == 1
        assert not list((outbox / "mqtt").glob("*.json")) and not list((outbox / "telegram").glob("*.json"))
    assert "PRINT FAILURE confirmed" in first_err and "delivered" in second_err
    assert TOKEN not in first_err + second_err
