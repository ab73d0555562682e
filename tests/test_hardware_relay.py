"""The relay on mock pins: countdown then action, cancelled by acknowledge, the pause pulse, manual
commands, and the safe state after the service stops (in-process service and the ExecStopPost
helper)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gpiozero import Device

from appliance.decision import Alert
from appliance.hardware.board import LayerwatchBoard
from appliance.hardware.board_sink import BoardSink
from appliance.hardware.relay import RelayController, release_pin
from appliance.service.commands import Command, CommandKind
from tests.test_hardware_support import layerwatch_config, mock_factory, runs, service_context, wait_until

ALERT = Alert(id="a1", camera="printer", score=0.9, votes=3, window=5, burst_agree=2, burst_frames=2)


def _sink(tmp_path: Path, relay: dict, countdown_s: float = 0.2):
    factory = mock_factory()
    config = layerwatch_config({"relay": relay}, alarm={"countdown_s": countdown_s, "buzzer_max_s": 1})
    board = LayerwatchBoard(config.hardware, pin_factory=factory)
    sink = BoardSink(board, config, service_context(tmp_path))
    sink.start()
    return sink, factory.pin(relay["pin"])


def test_cut_power_after_the_countdown(tmp_path: Path):
    """printer_on wiring (NC contacts), active-low board: the coil is energised (pin low) only
    after countdown_s."""
    sink, pin = _sink(tmp_path, {"pin": 27, "active_high": False})
    try:
        assert pin.state == 1  # armed = released for printer_on
        started = time.monotonic()
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        assert sink.relay.counting == ["printer"]
        time.sleep(0.1)
        assert pin.state == 1, "nothing happens during the countdown"
        assert wait_until(lambda: pin.state == 0, 2)
        assert time.monotonic() - started == pytest.approx(0.2, abs=0.1)
        assert sink.relay.fired == ["printer"]
        time.sleep(0.1)
        assert pin.state == 0, "the power stays cut"
        sink.on_command(Command(CommandKind.RELAY, value=False, origin="mqtt"))  # power back by hand
        assert pin.state == 1
    finally:
        sink.stop()


def test_acknowledge_cancels_the_countdown(tmp_path: Path):
    sink, pin = _sink(tmp_path, {"pin": 27, "active_high": False})
    try:
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        time.sleep(0.05)
        sink.on_command(Command(CommandKind.ACKNOWLEDGE, camera="printer", origin="button"))
        assert sink.relay.counting == []
        time.sleep(0.3)
        assert pin.state == 1 and sink.relay.fired == []
    finally:
        sink.stop()


def test_acknowledge_for_another_camera_does_not_cancel(tmp_path: Path):
    sink, pin = _sink(tmp_path, {"pin": 27})
    try:
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        sink.on_command(Command(CommandKind.ACKNOWLEDGE, camera="other"))
        assert wait_until(lambda: pin.state == 1, 2)  # active-high: energised
    finally:
        sink.stop()


def test_printer_off_wiring_energises_while_watching_and_releases_to_cut(tmp_path: Path):
    sink, pin = _sink(tmp_path, {"pin": 22, "safe_state": "printer_off"})
    try:
        assert pin.state == 1, "NO contacts: the coil holds the printer's power while watched"
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        assert wait_until(lambda: pin.state == 0, 2)
    finally:
        sink.stop()


def test_pulse_pause_closes_the_contacts_for_pulse_s(tmp_path: Path):
    sink, pin = _sink(tmp_path, {"pin": 27, "action": "pulse_pause", "pulse_s": 0.15}, countdown_s=0)
    pin.clear_states()
    try:
        sink.on_alert("printer", ALERT, None, b"")  # type: ignore[arg-type]
        assert wait_until(lambda: len(pin.states) >= 3, 2)
        history = runs(pin)
        assert history[1][0] == 1 and history[1][1] == pytest.approx(0.15, abs=0.06)
        assert pin.state == 0
    finally:
        sink.stop()


def test_test_alarm_leaves_the_relay_alone(tmp_path: Path):
    sink, pin = _sink(tmp_path, {"pin": 27})
    try:
        pin.clear_states()
        sink.on_command(Command(CommandKind.TEST_ALARM))
        time.sleep(0.3)
        assert [s.state for s in pin.states] == [0]
    finally:
        sink.stop()


def test_stop_releases_a_cut_relay_and_cancels_countdowns(tmp_path: Path):
    sink, pin = _sink(tmp_path, {"pin": 27, "active_high": False}, countdown_s=0.3)
    sink.relay.act("printer")
    assert pin.state == 0
    sink.on_alert("other", ALERT, None, b"")  # type: ignore[arg-type]
    sink.stop()
    assert [s.state for s in pin.states][-2] == 1 and pin.function == "input"
    time.sleep(0.4)
    assert pin.function == "input", "a cancelled countdown must not touch the pin after stop"


def test_release_helper_drives_released_then_frees(tmp_path: Path):
    factory = mock_factory()
    config = layerwatch_config({"relay": {"pin": 27, "active_high": False}}).hardware.relay
    assert config is not None
    release_pin(config, factory)
    pin = factory.pin(27)
    assert [s.state for s in pin.states][-2] == 1 and pin.function == "input"


def test_release_helper_runs_as_exec_stop_post(tmp_path: Path):
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        "[hardware]\nrelay = { pin = 27, active_high = false }\n"
        '[[cameras]]\nname = "p"\nsource = { type = "replay", path = "." }\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "appliance.hardware.relay", "--release", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "GPIOZERO_PIN_FACTORY": "mock"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "relay on BCM 27 released" in proc.stdout


def test_controller_counts_down_once_per_camera():
    class FakeRelay:
        closed = False
        value = 0

        def on(self) -> None:
            self.value = 1

        def off(self) -> None:
            self.value = 0

    config = layerwatch_config({"relay": {"pin": 27}}).hardware.relay
    assert config is not None
    relay = RelayController(FakeRelay(), config, countdown_s=0.1)
    relay.start_countdown("a")
    relay.start_countdown("a")  # a repeat alert does not restart it
    relay.start_countdown("b")
    assert relay.counting == ["a", "b"]
    assert relay.cancel("a")
    assert wait_until(lambda: relay.fired == ["b"], 1)
    assert not relay.cancel(None)


@pytest.mark.usefixtures("shipped_model")
def test_relay_is_released_after_the_service_stops(tmp_path: Path, synthetic_clip: Path):
    """The real service loop with a printer_off relay: energised while it runs, released after."""
    from appliance.service.runner import Service

    factory = mock_factory()
    config = layerwatch_config(
        {"relay": {"pin": 27, "active_high": False, "safe_state": "printer_off"}, "status_led": {"pin": 4}},
        service={"state_dir": str(tmp_path / "state"), "analysis_interval_s": 0},
        cameras=[
            {"name": "printer", "source": {"type": "replay", "path": str(synthetic_clip), "rate_fps": 0}}
        ],
    )
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        service = Service(config, max_frames=3)
        assert service.run() == 0
    finally:
        Device.pin_factory = previous
    pin = factory.pin(27)
    states = [s.state for s in pin.states]
    assert 0 in states[1:], "the coil was energised (active-low) while the service ran"
    assert states[-2] == 1 and pin.function == "input", "released, then freed"
    assert factory.pin(4).function == "input"
