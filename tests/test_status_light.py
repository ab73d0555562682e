"""``layerwatch status-light``: the LED code for an unconfigured card and an invalid config (issue 16).

The board LED is a directory shaped like ``/sys/class/leds/ACT`` (the kernel's LED class files);
the wired LED runs on gpiozero's MockFactory. The command itself runs as a real process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.hardware.setup_light import CODES, find_board_led, run_status_light, show_code, wired_led


def fake_act_led(root: Path, name: str = "ACT", trigger: str = "heartbeat") -> Path:
    led = root / name
    led.mkdir(parents=True)
    (led / "trigger").write_text(f"none rc-feedback [{trigger}] mmc0 timer\n")
    (led / "brightness").write_text("0\n")
    (led / "max_brightness").write_text("255\n")
    return led


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def lit(self, colour: tuple[float, float, float]) -> None:
        self.events.append(("lit", time.monotonic()))

    def dark(self) -> None:
        self.events.append(("dark", time.monotonic()))

    def close(self) -> None:
        self.events.append(("close", time.monotonic()))


def test_the_two_codes_differ_from_each_other():
    assert CODES["unconfigured"].flashes == 2 and CODES["config_error"].flashes == 3
    assert CODES["unconfigured"].colour != CODES["config_error"].colour


def test_show_code_flashes_then_pauses_and_ends_dark():
    light, stop = Recorder(), threading.Event()
    code = CODES["config_error"]
    timer = threading.Timer(code.period_s * 1.3, stop.set)
    timer.start()
    periods = show_code([light], code, stop)
    assert periods == 1
    lit = [t for kind, t in light.events if kind == "lit"]
    assert len(lit) == 5  # 3 in the first period, 2 before the stop at 1.3 periods
    assert lit[3] - lit[2] == pytest.approx(code.on_s + code.off_s + code.pause_s, abs=0.15)
    assert lit[1] - lit[0] == pytest.approx(code.on_s + code.off_s, abs=0.1)
    assert light.events[-1][0] == "dark"


def test_board_led_trigger_is_set_aside_and_restored(tmp_path: Path):
    led = fake_act_led(tmp_path)
    board = find_board_led(tmp_path)
    assert board is not None
    assert (led / "trigger").read_text() == "none"
    board.lit((1, 0, 0))
    assert (led / "brightness").read_text() == "255"
    board.dark()
    assert (led / "brightness").read_text().strip() == "0"
    board.close()
    assert (led / "trigger").read_text() == "heartbeat"


def test_older_kernels_name_the_board_led_led0(tmp_path: Path):
    fake_act_led(tmp_path, "led0", trigger="mmc0")
    board = find_board_led(tmp_path)
    assert board is not None and board.path.name == "led0"
    board.close()
    assert find_board_led(tmp_path / "none") is None


def test_wired_led_only_from_a_valid_hardware_table(tmp_path: Path):
    factory = MockFactory()
    config = tmp_path / "layerwatch.toml"
    # the file is invalid elsewhere; its [hardware] table is valid: the user has said where the LED is
    config.write_text(
        "[service]\nanalysis_interval_s = -1\n\n[hardware]\n"
        "status_led = { pin = 16 }\nrelay = { pin = 27, active_high = false }\n"
    )
    led = wired_led(config, pin_factory=factory)
    assert led is not None
    led.lit((1, 0, 0))
    assert factory.pin(16).state
    led.dark()
    assert not factory.pin(16).state
    led.close()
    assert 27 not in {getattr(p, "number", None) for p in factory.pins.values()} or not factory.pin(27).state

    config.write_text("[hardware]\nstatus_led = { pin = 99 }\n")
    assert wired_led(config, pin_factory=factory) is None  # the table itself is invalid: pins unknown
    config.write_text("not toml [")
    assert wired_led(config, pin_factory=factory) is None
    assert wired_led(tmp_path / "missing.toml", pin_factory=factory) is None


def test_rgb_wired_led_shows_the_colour(tmp_path: Path):
    factory = MockFactory()
    config = tmp_path / "layerwatch.toml"
    config.write_text("[hardware]\nstatus_led = { red = 5, green = 6, blue = 13 }\n")
    stop = threading.Event()
    seen: list[tuple[bool, bool, bool]] = []

    def watch() -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            seen.append((factory.pin(5).state, factory.pin(6).state, factory.pin(13).state))
            time.sleep(0.02)
        stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert run_status_light("config_error", stop, config, tmp_path / "no-leds", pin_factory=factory) == 0
    watcher.join()
    assert (True, False, False) in seen  # red
    assert not any(g or b for _, g, b in seen)


def test_no_led_at_all_says_so_and_exits(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level("WARNING")
    assert run_status_light("unconfigured", threading.Event(), None, tmp_path) == 0
    assert "no LED to show it on" in caplog.text and "the journal carries the state" in caplog.text


def test_the_command_runs_until_sigterm_and_restores_the_board_led(tmp_path: Path):
    led = fake_act_led(tmp_path / "leds")
    env = {**os.environ, "LAYERWATCH_CONFIG": str(tmp_path / "absent.toml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "status-light", "unconfigured", "--leds", str(tmp_path / "leds")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        values = set()
        while time.monotonic() < deadline and len(values) < 2:
            values.add((led / "brightness").read_text().strip())
            time.sleep(0.02)
        assert values >= {"0", "255"}, values
        assert (led / "trigger").read_text() == "none"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "status light: unconfigured: 2 flashes every 2.5 s on board LED ACT" in out
    assert (led / "trigger").read_text() == "heartbeat"
    assert (led / "brightness").read_text().strip() == "0"
