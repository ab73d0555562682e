"""The buzzer on mock pins: start-up chirp, alarm rhythm, silenced by acknowledge, by its maximum
duration and by stop; the tonal buzzer's tones; the test alarm."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.decision import Alert
from appliance.hardware.board import LayerwatchBoard
from appliance.hardware.board_sink import BoardSink
from appliance.service.commands import Command, CommandKind
from tests.test_hardware_support import layerwatch_config, mock_factory, runs, service_context, wait_until

ALERT = Alert(id="a1", camera="printer", score=0.9, votes=3, window=5, burst_agree=2, burst_frames=2)
BUZZER = {"pin": 17, "alarm_on_s": 0.05, "alarm_off_s": 0.05, "chirp_s": 0.03, "test_s": 0.2}


def _sink(tmp_path: Path, buzzer: dict, max_s: float = 5.0, factory=None):
    factory = factory or mock_factory()
    config = layerwatch_config({"buzzer": buzzer}, alarm={"countdown_s": 5, "buzzer_max_s": max_s})
    board = LayerwatchBoard(config.hardware, pin_factory=factory)
    return BoardSink(board, config, service_context(tmp_path)), factory


def test_chirp_on_start(tmp_path: Path):
    sink, factory = _sink(tmp_path, BUZZER)
    pin = factory.pin(17)
    pin.clear_states()
    sink.start()
    try:
        assert wait_until(lambda: not sink.alarm.sounding, 2)
        history = runs(pin)
        lit = [sec for state, sec in history if state == 1]
        assert len(lit) == 1 and lit[0] == pytest.approx(0.03, abs=0.03), history
        assert pin.state == 0
    finally:
        sink.stop()


def test_alarm_beeps_until_acknowledged(tmp_path: Path):
    sink, factory = _sink(tmp_path, BUZZER)
    sink.start()
    pin = factory.pin(17)
    try:
        wait_until(lambda: not sink.alarm.sounding, 2)
        pin.clear_states()
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        time.sleep(0.42)
        assert sink.alarm.sounding
        history = runs(pin)
        beeps = [sec for state, sec in history if state == 1]
        gaps = [sec for state, sec in history[1:] if state == 0]
        assert len(beeps) >= 3, history
        assert all(sec == pytest.approx(0.05, abs=0.04) for sec in beeps)
        assert all(sec == pytest.approx(0.05, abs=0.04) for sec in gaps)
        sink.on_command(Command(CommandKind.ACKNOWLEDGE, origin="mqtt"))
        assert not sink.alarm.sounding and sink.alarm.silenced_by == "acknowledge"
        assert pin.state == 0
        count = len(pin.states)
        time.sleep(0.15)
        assert len(pin.states) == count, "silent means silent"
    finally:
        sink.stop()


def test_alarm_stops_by_itself_after_buzzer_max_s(tmp_path: Path):
    sink, factory = _sink(tmp_path, BUZZER, max_s=0.3)
    try:
        started = time.monotonic()
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        assert wait_until(lambda: not sink.alarm.sounding, 3)
        assert time.monotonic() - started == pytest.approx(0.3, abs=0.15)
        assert sink.alarm.silenced_by == "timeout"
        assert factory.pin(17).state == 0
    finally:
        sink.stop()


def test_stop_silences_a_sounding_alarm(tmp_path: Path):
    sink, factory = _sink(tmp_path, BUZZER)
    sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
    assert wait_until(lambda: factory.pin(17).state == 1, 1)
    sink.stop()
    assert not sink.alarm.sounding
    assert factory.pin(17).function == "input"  # freed; an active buzzer's driver then stays off


def test_test_alarm_sounds_for_test_s_and_flashes_failure(tmp_path: Path):
    factory = mock_factory()
    config = layerwatch_config({"buzzer": BUZZER, "status_led": {"pin": 4}})
    board = LayerwatchBoard(config.hardware, pin_factory=factory)
    sink = BoardSink(board, config, service_context(tmp_path))
    sink.start()
    try:
        sink.on_command(Command(CommandKind.TEST_ALARM, origin="button"))
        assert sink.alarm.sounding and sink.shown == "failure"
        assert wait_until(lambda: not sink.alarm.sounding, 2)
        time.sleep(0.05)
        sink.refresh()
        assert sink.shown == "starting"
    finally:
        sink.stop()


def test_tonal_buzzer_plays_the_configured_tones(tmp_path: Path):
    tonal = {**BUZZER, "tonal": True, "alarm_tones_hz": [2000, 1000], "chirp_hz": 3000}
    sink, factory = _sink(tmp_path, tonal)
    pin = factory.pin(17)
    heard: set[float] = set()
    try:
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and len(heard) < 2:
            if pin.frequency:
                heard.add(round(pin.frequency))
            time.sleep(0.005)
        assert heard == {2000, 1000}
        sink.on_command(Command(CommandKind.ACKNOWLEDGE))
        assert pin.frequency is None and pin.state == 0
    finally:
        sink.stop()
