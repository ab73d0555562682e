"""Printer telemetry: the anomaly detector's rules on synthetic streams, and the sink against a real
mosquitto: a sensor stream on ``printing/<printer_id>/sensor`` with an injected runaway and a dropout
raises exactly those two alerts (MQTT alert events with the words) and the control messages, a normal
stream raises none; the linked printer's temperatures reach the detector too."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.actions.dispatcher import EventHub, event_hub
from appliance.actions.mqtt.sink import MqttSink
from appliance.actions.printer_control import PrinterControl
from appliance.actions.printers import build_printer
from appliance.config.model import LayerwatchConfig
from appliance.config.telemetry import SignalConfig, TelemetryConfig
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext
from appliance.telemetry.detector import AnomalyDetector
from appliance.telemetry.sink import TelemetrySink
from tests.http_peers import HttpPeer, serving
from tests.mqtt_fixtures import Broker, Subscriber

BASE = "layerwatch/layerwatch"
SENSOR = "printing/printer_1/sensor"
CONTROL = "printer/control/printer_1"


def normal_sample(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "printer_id": "printer_1", "timestamp": "2026-12-02T14:32:10Z", "layer_height": 0.2,
        "nozzle_temp": round(210 + rng.uniform(-0.4, 0.4), 2), "nozzle_target": 210,
        "bed_temp": round(60 + rng.uniform(-0.3, 0.3), 2), "bed_target": 60,
        "roughness": round(32 + rng.uniform(-3, 3), 2), "anomaly": None,
    }  # fmt: skip


def telemetry_config(**more: Any) -> TelemetryConfig:
    signals = {**TelemetryConfig().signals, "roughness": SignalConfig(max=75)}
    return TelemetryConfig(enabled=True, signals=signals, **more)


def test_normal_stream_with_a_heat_up_raises_nothing():
    detector = AnomalyDetector(telemetry_config())
    rng = np.random.default_rng(1)
    t, found = 0.0, []
    for step in range(60):  # heating: 25 -> 210 C at about 3 C/s, target set from the start
        sample = {**normal_sample(rng), "nozzle_temp": min(210.0, 25 + 3.2 * step)}
        found += detector.observe("s", sample, t)
        t += 1.0
    for _ in range(500):
        found += detector.observe("s", normal_sample(rng), t)
        found += detector.check_dropouts(t)
        t += 0.5
    assert found == []


def test_each_rule_explains_what_it_saw():
    detector = AnomalyDetector(telemetry_config(cooldown_s=0))
    rng = np.random.default_rng(2)
    t = 0.0
    for _ in range(40):
        detector.observe("s", normal_sample(rng), t)
        t += 1
    [runaway] = detector.observe("s", {**normal_sample(rng), "nozzle_temp": 236.0}, t)
    assert runaway.kind == "runaway" and runaway.signal == "nozzle_temp" and runaway.target == 210
    assert "running away: 236, target 210 (+26.0, limit 15)" in runaway.words
    assert detector.observe("s", {**normal_sample(rng), "nozzle_temp": 237.0}, t + 1) == []  # said once
    [too_hot] = detector.observe("s", {**normal_sample(rng), "nozzle_temp": 305.0}, t + 2)
    assert too_hot.kind == "out_of_range" and "[0, 300]" in too_hot.words
    detector.observe("s", normal_sample(rng), t + 3)
    [rough] = detector.observe("s", {**normal_sample(rng), "roughness": 60.0}, t + 4)
    assert rough.kind == "outlier" and rough.figures["zscore"] > 6
    assert detector.observe("s", {**normal_sample(rng), "roughness": 80.0}, t + 5)[0].kind == "out_of_range"
    [dropout] = detector.check_dropouts(t + 40)
    assert dropout.kind == "dropout" and dropout.signal == "s" and "no sample for 35 s" in dropout.words


def test_a_heater_that_does_not_heat():
    detector = AnomalyDetector(telemetry_config())
    found = []
    for second in range(400):  # target 60, the bed stays at 24-25 C (heating_timeout_s 300 by default)
        sample = {"bed_temp": 24 + (second % 3) * 0.3, "bed_target": 60}
        found += detector.observe("printer", sample, float(second))
    [stuck] = found
    assert stuck.kind == "heater_not_heating" and stuck.signal == "bed_temp"
    assert "not heating" in stuck.words and "target 60" in stuck.words


@pytest.fixture
def telemetry(
    tmp_path: Path, mosquitto: Broker, subscriber: Subscriber
) -> Iterator[tuple[TelemetrySink, Subscriber]]:
    tree = {
        "mqtt": {"broker_url": mosquitto.url, "discovery": False},
        "telemetry": {"enabled": True, "dropout_s": 1.0, "control": "pause", "publish_interval_s": 0.5,
                      "signals": {**{k: v.model_dump() for k, v in TelemetryConfig().signals.items()},
                                  "roughness": {"max": 75}}},
    }  # fmt: skip
    config = LayerwatchConfig.model_validate(tree)
    context = ServiceContext(CommandQueue(), lambda camera: {"state": "watching"}, ["printer"], tmp_path)
    mqtt_sink = MqttSink(config, context)
    sink = TelemetrySink(config, context, event_hub(context))
    context.sinks.extend([mqtt_sink, sink])
    subscriber.subscribe(f"{BASE}/#")
    subscriber.subscribe("printer/control/#")
    mqtt_sink.start()
    sink.start()
    assert mqtt_sink.publisher.connected.wait(10)
    time.sleep(0.3)  # the sensor subscription's SUBACK
    stop = threading.Event()

    def loop() -> None:  # the analysis loop's on_tick, about ten times a second here
        while not stop.is_set():
            sink.on_tick(time.monotonic())
            stop.wait(0.1)

    ticker = threading.Thread(target=loop, daemon=True)
    ticker.start()
    yield sink, subscriber
    stop.set()
    ticker.join(2)
    mqtt_sink.stop()


def _publish(subscriber: Subscriber, samples: list[dict[str, Any]], rate_hz: float = 50.0) -> None:
    for sample in samples:
        subscriber.client.publish(SENSOR, json.dumps(sample), qos=0)
        time.sleep(1 / rate_hz)


def _alert_events(subscriber: Subscriber) -> list[dict[str, Any]]:
    return [e for e in subscriber.json_on(f"{BASE}/printer/event") if e["type"] == "alert"]


def test_an_injected_runaway_and_a_dropout_raise_exactly_those_alerts(telemetry):
    sink, subscriber = telemetry
    rng = np.random.default_rng(5)
    _publish(subscriber, [normal_sample(rng) for _ in range(60)])
    _publish(subscriber, [{**normal_sample(rng), "nozzle_temp": 232.0 + i} for i in range(8)])
    _publish(subscriber, [normal_sample(rng) for _ in range(40)])
    time.sleep(2.0)  # silence: a dropout after dropout_s = 1
    deadline = time.monotonic() + 10
    while len(_alert_events(subscriber)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    events = _alert_events(subscriber)
    assert [e["cause"].split(":")[0] for e in events] == ["nozzle_temp running away", SENSOR], events
    assert "target 210" in events[0]["cause"] and "no sample for" in events[1]["cause"]
    assert all(e["camera"] == "printer" and e["repeat"] == 0 for e in events)
    controls = [json.loads(p) for t, p, _ in subscriber.messages if t == CONTROL]
    assert [(c["action"], c["anomaly"], c["signal"]) for c in controls] == [
        ("pause", "runaway", "nozzle_temp"), ("pause", "dropout", SENSOR),
    ]  # fmt: skip
    assert controls[0]["printer_id"] == "printer_1" and controls[0]["value"] == 232.0
    raw = subscriber.wait_for(f"{BASE}/printer/telemetry", lambda p: json.loads(p)["alerts"] == 2)
    figures = json.loads(raw)
    assert figures["printer_id"] == "printer_1" and 209 < figures["nozzle_temp"] < 211
    assert figures["samples"] == 108 and figures["anomalies"] == [f"dropout:{SENSOR}"]
    assert sink.context.telemetry["printer_bed_temp"] == pytest.approx(60, abs=0.5)


def test_a_normal_stream_raises_no_alert_and_sends_no_control(telemetry):
    sink, subscriber = telemetry
    rng = np.random.default_rng(6)
    _publish(subscriber, [normal_sample(rng) for _ in range(150)])
    time.sleep(0.5)
    assert sink.samples == 150 and sink.alerts == []
    assert _alert_events(subscriber) == []
    assert not [t for t, _, _ in subscriber.messages if t == CONTROL]


@pytest.fixture
def moonraker() -> Iterator[HttpPeer]:
    with serving() as peer:
        yield peer


def test_the_printers_temperatures_reach_the_detector(moonraker: HttpPeer, tmp_path: Path):
    def answer(request):
        if "extruder" in request.query:
            status = {"extruder": {"temperature": 251.0, "target": 210.0},
                      "heater_bed": {"temperature": 60.1, "target": 60.0}}  # fmt: skip
        else:
            status = {
                "print_stats": {"state": "printing", "filename": "a.gcode"},
                "virtual_sdcard": {"progress": 0.5},
            }
        return 200, {"result": {"status": status}}, {}

    moonraker.responder = answer
    tree = {"printer": {"type": "moonraker", "url": moonraker.url, "poll_interval_s": 0.1, "action": "none"},
            "telemetry": {"enabled": True, "sensor_topic": None}}  # fmt: skip
    config = LayerwatchConfig.model_validate(tree)
    assert config.printer is not None
    hub = EventHub()
    context = ServiceContext(CommandQueue(), lambda camera: {}, ["printer"], tmp_path)
    sink = TelemetrySink(config, context, hub)
    control = PrinterControl(config.printer, 60, build_printer(config.printer), context.commands, hub)
    control.read_temperatures = True
    control.start()
    deadline = time.monotonic() + 5
    while sink.samples < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    control.stop()
    assert sink.detector.latest() == {"nozzle_temp": 251.0, "bed_temp": 60.1}
    assert sink.figures()["samples"] >= 3


def test_octoprint_temperatures(moonraker: HttpPeer):
    def answer(request):
        if request.path == "/api/printer":
            assert request.query == {"exclude": ["sd,state"]}
            return 200, {"temperature": {"tool0": {"actual": 214.8, "target": 215.0},
                                         "bed": {"actual": 59.7, "target": 60.0}}}, {}  # fmt: skip
        return 409, {"error": "Printer is not operational"}, {}

    moonraker.responder = answer
    printer = {"type": "octoprint", "url": moonraker.url}
    client = build_printer(LayerwatchConfig.model_validate({"printer": printer}).printer)
    assert client.temperatures() == {  # type: ignore[attr-defined]
        "nozzle_temp": 214.8, "nozzle_target": 215.0, "bed_temp": 59.7, "bed_target": 60.0,
    }  # fmt: skip
