"""``layerwatch test --hardware`` on gpiozero mock pins: each configured part once, in order (read back
from the pins at every pause of the walk), unconfigured and ``--skip``ped parts left alone with a line,
a held pin named with the service to stop, the button pressed / not pressed / stuck, an invalid config
refused (78) before any pin exists, no GPIO a clear message instead of a traceback, and no camera
analysis."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockPWMPin

from appliance.cli import main
from appliance.hardware.walk import PARTS, WalkTimes, pins_in_use, run_walk
from tests.test_hardware_support import layerwatch_config, mock_factory, runs

FULL: dict[str, Any] = {
    "status_led": {"red": 5, "green": 6, "blue": 13, "active_high": False},  # common anode: lit when low
    "buzzer": {"pin": 17},
    "relay": {"pin": 27, "active_high": False},  # active-low module: energised when low
    "button": {"pin": 26},
    "fan_pin": 18,
}
TIMES = WalkTimes(step_s=1.0, beep_s=0.2, relay_warning_s=3.0, button_s=0.5)
CONFIG_TOML = """
[[cameras]]
name = "printer"
source = { type = "csi" }

[hardware]
status_led = { red = 5, green = 6, blue = 13 }
buzzer = { pin = 17 }
relay = { pin = 27, active_high = false }
button = { pin = 26 }
fan_pin = 18
"""


class PausesOfTheWalk:
    """The walk's ``sleep``: records, at every pause, its length, the lines said so far and the state of
    every pin that exists; can press the button once the walk has asked for it."""

    def __init__(self, factory: Any, out: io.StringIO, press_at_prompt: bool = False):
        self.factory = factory
        self.out = out
        self.press_at_prompt = press_at_prompt
        self.pauses: list[tuple[float, str, dict[int, float]]] = []

    def __call__(self, seconds: float) -> None:
        text = self.out.getvalue()
        if self.press_at_prompt and "press the button" in text.splitlines()[-1]:
            self.factory.pin(26).drive_low()
        states = {int(info.name[4:]): float(pin.state) for info, pin in self.factory.pins.items()}
        self.pauses.append((seconds, text, states))


class ShortedToGround(MockPWMPin):  # type: ignore[misc]
    """A pin tied to GND: the pull-up cannot lift it (a stuck button, or one wired wrongly)."""

    def drive_high(self) -> None:
        pass


def walk(hardware: dict[str, Any], press: bool = False, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    factory = mock_factory()
    out = io.StringIO()
    pauses = PausesOfTheWalk(factory, out, press_at_prompt=press)
    code, summary = run_walk(
        layerwatch_config(hardware).hardware, TIMES, pin_factory=factory, sleep=pauses, out=out, **kwargs
    )
    return code, summary, (factory, out.getvalue(), pauses.pauses)


def test_every_part_once_in_order_with_the_pins_read_back_at_each_pause():
    code, summary, (factory, text, pauses) = walk(FULL, press=True)
    assert code == 0 and summary["failed"] == 0
    assert {part: entry["status"] for part, entry in summary["hardware"].items()} == dict.fromkeys(
        PARTS, "ok"
    )
    assert summary["hardware"]["button"]["pressed"] is True
    assert summary["hardware"]["relay"]["pins"] == {"pin": 27}
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines[1:7]] == [
        "status_led", "buzzer", "relay", "relay", "fan", "button",
    ]  # fmt: skip
    assert "BCM 5 (header pin 29)" in lines[1] and "BCM 17 (header pin 11)" in lines[2]
    # the LED: red, green, blue for one step each (common anode: the lit colour's pin is LOW)
    led = [(s, {p: st[p] for p in (5, 6, 13)}) for s, _, st in pauses[:3]]
    assert led == [
        (1.0, {5: 0.0, 6: 1.0, 13: 1.0}), (1.0, {5: 1.0, 6: 0.0, 13: 1.0}), (1.0, {5: 1.0, 6: 1.0, 13: 0.0}),
    ]  # fmt: skip
    # one beep: the buzzer sounds during one short pause and not before or after
    assert pauses[3][0] == 0.2 and pauses[3][2][17] == 1.0
    assert [s.state for s in factory.pin(17).states[1:]].count(True) == 1
    # the relay: the warning is said, with what it switches, while the coil is released (pin high) ...
    warning_at, said, states = pauses[4]
    assert warning_at == 3.0 and states[27] == 1.0 and "relay: energised" not in said
    assert "WARNING" in said and "printer's power through the NC contacts" in said and "OFF for 1 s" in said
    # ... then energised (active-low: pin low) for one step, released (high) before the pin was freed
    assert pauses[5][0] == 1.0 and pauses[5][2][27] == 0.0
    assert [s.state for s in factory.pin(27).states][-3:] == [0, 1, 0]
    assert factory.pin(27).function == "input"
    # the fan: full duty at the configured PWM frequency for a step, then stopped for a step
    assert [(s, st[18]) for s, _, st in pauses[6:8]] == [(1.0, 1.0), (1.0, 0.0)]
    assert factory.pin(18).states[1].state == 1.0
    # the button: asked for, pressed at the first poll
    assert "press the button on BCM 26 (header pin 37) now" in lines[6] and lines[6].endswith("pressed, ok")
    # nothing is held afterwards: every pin can be claimed again
    for pin in (5, 6, 13, 17, 27, 18, 26):
        LED(pin, pin_factory=factory).close()


def test_unconfigured_and_skipped_parts_get_a_line_and_their_pins_are_never_touched():
    code, summary, (factory, text, _) = walk({"buzzer": {"pin": 17}, "relay": {"pin": 27}}, skip=["relay"])
    assert code == 0
    statuses = {part: entry["status"] for part, entry in summary["hardware"].items()}
    assert statuses == {"status_led": "skipped", "buzzer": "ok", "relay": "skipped", "fan": "skipped",
                        "button": "skipped"}  # fmt: skip
    assert "status_led: skipped (not configured: no hardware.status_led)" in text
    assert "fan: skipped (not configured: no hardware.fan_pin)" in text
    assert "relay: skipped (--skip relay)" in text and "WARNING" not in text
    assert summary["hardware"]["relay"]["pins"] == {"pin": 27}
    assert [info.name for info in factory.pins] == ["GPIO17"]  # only the buzzer's pin was ever made


def test_nothing_configured_needs_no_gpio_at_all(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    out = io.StringIO()
    code, summary = run_walk(layerwatch_config({}).hardware, TIMES, sleep=lambda s: None, out=out)
    assert code == 0 and summary["pin_factory"] == "none"
    assert all(entry["status"] == "skipped" for entry in summary["hardware"].values())
    assert Device.pin_factory is None  # no pin factory was even looked for


def test_button_not_pressed_and_button_stuck():
    code, summary, (_, text, pauses) = walk({"button": {"pin": 26}})
    assert "button: press the button on BCM 26 (header pin 37) now (waiting 0.5 s) ... not pressed" in text
    assert code == 0  # a missed press is not a failure: the walk cannot tell it from a wiring fault
    assert summary["hardware"]["button"] == {
        "status": "not_pressed", "pins": {"pin": 26}, "pressed": False,
        "detail": "not pressed within 0.5 s; if you pressed it, check the wiring "
        "(button between the pin and GND)",
    }  # fmt: skip
    assert sum(s for s, _, _ in pauses) == pytest.approx(0.5)

    factory = mock_factory()
    factory.pin(26, pin_class=ShortedToGround)  # held (or shorted) before the walk asks for it
    out = io.StringIO()
    code, summary = run_walk(
        layerwatch_config({"button": {"pin": 26}}).hardware, TIMES, pin_factory=factory,
        sleep=lambda s: None, out=out,
    )  # fmt: skip
    assert code == 1 and summary["hardware"]["button"]["status"] == "failed"
    assert "reads pressed before you were asked" in out.getvalue()


def test_a_pin_another_program_holds_fails_that_part_and_names_the_service_to_stop():
    factory = mock_factory()
    blockers = [LED(27, pin_factory=factory), LED(18, pin_factory=factory)]  # the service's relay and fan
    out = io.StringIO()
    code, summary = run_walk(
        layerwatch_config(FULL).hardware, TIMES, pin_factory=factory, sleep=lambda s: None, out=out
    )
    assert code == 1 and summary["failed"] == 2
    relay, fan = summary["hardware"]["relay"], summary["hardware"]["fan"]
    assert relay["status"] == "failed" and "BCM 27 is in use by another program" in relay["detail"]
    assert "sudo systemctl stop layerwatch)" in relay["detail"]
    assert fan["status"] == "failed" and "layerwatch-fan.service" in fan["detail"]
    assert summary["hardware"]["status_led"]["status"] == summary["hardware"]["buzzer"]["status"] == "ok"
    assert "relay: FAILED: BCM 27 is in use" in out.getvalue()  # no warning for a relay it cannot click
    assert "WARNING" not in out.getvalue() and "fan: 100 % for 1 s" in out.getvalue()
    assert all(s.state == 0 for s in factory.pin(27).states)  # the walk never drove the held pin
    # lgpio, when another process holds the line, says only this
    assert pins_in_use(RuntimeError("'GPIO busy'"))
    for blocker in blockers:
        blocker.close()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "layerwatch.toml"
    path.write_text(CONFIG_TOML)
    return path


def test_cli_walks_only_the_hardware_and_ends_with_json(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from appliance.service.runner import Service

    factory = mock_factory()
    monkeypatch.setattr(Device, "pin_factory", factory)  # pin_factory = "auto": gpiozero's choice

    def no_analysis(self: Any) -> Any:
        raise AssertionError("--hardware must not analyse a frame")

    monkeypatch.setattr(Service, "test_once", no_analysis)
    code = main(["test", "--hardware", "--config", str(config_file), "--step-s", "0.05", "--button-s", "0.1"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["pin_factory"] == "MockFactory" and summary["failed"] == 0
    assert summary["hardware"]["button"]["pressed"] is False
    assert lines[-2] == "summary: 4 ok, 1 not pressed"
    # real time on the pins: each colour of the (common-cathode) LED lit for one step
    for pin in (5, 6, 13):
        lit = [seconds for state, seconds in runs(factory.pin(pin))[1:] if state == 1.0]
        assert len(lit) == 1 and 0.04 <= lit[0] < 1.0, (pin, runs(factory.pin(pin)))


def test_cli_invalid_config_exits_78_naming_the_key_before_any_pin_exists(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    factory = mock_factory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    config_file.write_text(CONFIG_TOML.replace("relay = { pin = 27", "relay = { pin = 99"))
    assert main(["test", "--hardware", "--config", str(config_file)]) == 78
    captured = capsys.readouterr()
    assert "hardware.relay.pin" in captured.err and captured.out == ""
    assert factory.pins == {}


def test_cli_without_gpio_says_so_without_a_traceback(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    try:
        Device.ensure_pin_factory()
    except Exception:
        pass
    else:
        pytest.skip("this machine has GPIO")
    monkeypatch.setattr(Device, "pin_factory", None)
    assert main(["test", "--hardware", "--config", str(config_file)]) == 1
    captured = capsys.readouterr()
    assert "no GPIO on this machine: gpiozero could not start a pin factory" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_a_tonal_buzzer_plays_the_chirp_tone_and_a_sysfs_fan_needs_no_gpio(tmp_path: Path):
    node = tmp_path / "target_pwm"
    node.write_text("0\n")
    factory = mock_factory()
    seen: list[tuple[float, float | None, str]] = []

    def pause(seconds: float) -> None:
        buzzer = next((pin for info, pin in factory.pins.items() if info.name == "GPIO17"), None)
        seen.append((seconds, buzzer.frequency if buzzer is not None else None, node.read_text().strip()))

    hardware = layerwatch_config(
        {"buzzer": {"pin": 17, "tonal": True}, "fan": {"backend": "sysfs", "sysfs_path": str(node)}}
    ).hardware
    out = io.StringIO()
    code, summary = run_walk(hardware, TIMES, pin_factory=factory, sleep=pause, out=out)
    assert code == 0 and summary["hardware"]["fan"] == {
        "status": "ok", "pins": {}, "detail": "100 % for 1 s, then stopped for 1 s",
    }  # fmt: skip
    assert seen[0][:2] == (0.2, pytest.approx(2500.0))  # the chirp's tone (buzzer.chirp_hz)
    assert [(s, duty) for s, _, duty in seen[1:]] == [(1.0, "255"), (1.0, "0")]
    assert node.read_text() == "255\n"  # the sysfs fan's resting state: full speed
    assert "buzzer: one 0.2 s beep at 2500 Hz (passive piezo)" in out.getvalue()
    assert [info.name for info in factory.pins] == ["GPIO17"]
