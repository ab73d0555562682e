"""The status light when the service cannot run: no configuration yet, or an invalid one.

``layerwatch status-light unconfigured|config_error`` shows a flash code until it is stopped
(SIGTERM), then leaves every LED as it found it. The SD image runs it as
``layerwatch-status-light@STATE.service`` (started by ``layerwatch-bootconfig``; it conflicts with
``layerwatch.service``, so starting the appliance stops it and frees the pins).

============= ======== ============================================ ==========================
state         colour   code                                         meaning
============= ======== ============================================ ==========================
unconfigured  blue     2 flashes (0.2 s lit, 0.3 s dark), 1.5 s dark no ``layerwatch.toml`` yet
config_error  red      3 flashes (0.2 s lit, 0.3 s dark), 1.5 s dark ``layerwatch.toml`` invalid
============= ======== ============================================ ==========================

Which LEDs show it:

* **The board's own activity LED** (``/sys/class/leds/ACT``, ``led0`` on older kernels: the green
  LED of every Raspberry Pi 3, 4, 400 and Zero 2 W). It is there without any wiring and driving it
  is always safe. Its kernel trigger (``heartbeat``, ``mmc0``...) is set to ``none`` while the code
  runs and put back at exit. The colour does not apply: it shows the rhythm only.
* **The wired status LED**, only when the file's ``[hardware]`` table is valid on its own (the rest
  of the file may be what is invalid): the user has said where it is. Without a configuration the
  wired LED stays dark: its pins are unknown, and a guessed pin could be the relay's. Only the LED
  is claimed; the relay, buzzer and button pins are not touched.

With neither (a mini PC, a Pi without the LED node) the journal alone carries the state and the
command exits 0.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import ConfigError, HardwareError, LayerwatchError
from appliance.hardware.status_patterns import BLUE, RED, Colour

logger = logging.getLogger(__name__)

LEDS_ROOT = Path("/sys/class/leds")
#: the activity LED's name: upstream and Raspberry Pi kernels since 6.1 say ACT, older ones led0
BOARD_LED_NAMES = ("ACT", "led0")


@dataclass(frozen=True)
class FlashCode:
    """``flashes`` times ``on_s`` lit and ``off_s`` dark, then ``pause_s`` more dark; repeated."""

    colour: Colour
    flashes: int
    on_s: float = 0.2
    off_s: float = 0.3
    pause_s: float = 1.5

    @property
    def period_s(self) -> float:
        return self.flashes * (self.on_s + self.off_s) + self.pause_s


CODES: dict[str, FlashCode] = {
    "unconfigured": FlashCode(BLUE, 2),
    "config_error": FlashCode(RED, 3),
}


class Light(Protocol):
    name: str

    def lit(self, colour: Colour) -> None: ...
    def dark(self) -> None: ...
    def close(self) -> None: ...


class SysfsLed:
    """A kernel LED (``/sys/class/leds/NAME``): trigger ``none`` while driven, restored on close."""

    def __init__(self, path: Path):
        self.path = path
        self.name = f"board LED {path.name} ({path})"
        self.max_brightness = int((path / "max_brightness").read_text().strip() or 1)
        current = re.search(r"\[([^\]]+)\]", (path / "trigger").read_text())
        self._trigger = current.group(1) if current else "none"
        self._brightness = (path / "brightness").read_text().strip()
        (path / "trigger").write_text("none")

    def _write(self, value: int | str) -> None:
        (self.path / "brightness").write_text(str(value))

    def lit(self, colour: Colour) -> None:
        self._write(self.max_brightness)

    def dark(self) -> None:
        self._write(0)

    def close(self) -> None:
        try:
            self._write(self._brightness)
            (self.path / "trigger").write_text(self._trigger)
        except OSError as exc:
            logger.warning("could not restore %s: %s", self.name, exc)


class WiredLed:
    """The configured ``[hardware.status_led]`` through gpiozero (single or RGB)."""

    def __init__(self, board: Any):
        self._board = board
        self._led = board.device("status_led")
        self._rgb = board.rgb
        self.name = f"wired status LED {self._led!r}"

    def lit(self, colour: Colour) -> None:
        if self._rgb:
            self._led.color = colour
        else:
            self._led.on()

    def dark(self) -> None:
        self._led.off()

    def close(self) -> None:
        self._board.close()


def find_board_led(root: Path = LEDS_ROOT) -> SysfsLed | None:
    for name in BOARD_LED_NAMES:
        path = root / name
        if (path / "brightness").exists() and (path / "trigger").exists():
            try:
                return SysfsLed(path)
            except OSError as exc:  # not root, or a read-only sysfs
                logger.warning("board LED %s cannot be driven: %s", path, exc)
    return None


def wired_led(config_path: Path | None, pin_factory: Any = None) -> WiredLed | None:
    """The wired LED of the file's ``[hardware]`` table, or None (no file, no LED, table invalid)."""
    if config_path is None or not config_path.exists():
        return None
    from appliance.config.hardware import HardwareConfig
    from appliance.fan.service import load_hardware_config

    try:
        hardware = load_hardware_config(config_path)
    except ConfigError as exc:
        logger.info("wired status LED not used: the [hardware] table is invalid too (%s)", exc)
        return None
    except LayerwatchError as exc:
        logger.info("wired status LED not used: %s", exc)
        return None
    if hardware.status_led is None:
        return None
    from appliance.hardware.board import LayerwatchBoard

    only_led = HardwareConfig(pin_factory=hardware.pin_factory, status_led=hardware.status_led)
    try:
        return WiredLed(LayerwatchBoard(only_led, pin_factory=pin_factory))
    except HardwareError as exc:
        logger.warning("wired status LED cannot be driven: %s", exc)
        return None


def show_code(lights: Sequence[Light], code: FlashCode, stop: threading.Event) -> int:
    """Run ``code`` on every light until ``stop`` is set; returns the number of periods shown."""
    periods = 0
    while not stop.is_set():
        for _ in range(code.flashes):
            for light in lights:
                light.lit(code.colour)
            if stop.wait(code.on_s):
                break
            for light in lights:
                light.dark()
            if stop.wait(code.off_s):
                break
        else:
            periods += 1
            stop.wait(code.pause_s)
    for light in lights:
        light.dark()
    return periods


def run_status_light(
    state: str,
    stop: threading.Event,
    config_path: Path | None = None,
    leds_root: Path = LEDS_ROOT,
    pin_factory: Any = None,
) -> int:
    """Show ``state``'s code on the board LED and the wired LED until ``stop``; exit status."""
    code = CODES[state]
    lights: list[Light] = [light for light in (find_board_led(leds_root), wired_led(config_path, pin_factory))
                           if light is not None]  # fmt: skip
    what = f"{state}: {code.flashes} flashes every {code.period_s:g} s"
    if not lights:
        board = " or ".join(str(leds_root / name) for name in BOARD_LED_NAMES)
        logger.warning("status light: %s; no LED to show it on (no %s, no valid [hardware.status_led]): "
                       "the journal carries the state", what, board)  # fmt: skip
        return 0
    logger.warning("status light: %s on %s", what, ", ".join(light.name for light in lights))
    try:
        show_code(lights, code, stop)
    finally:
        for light in lights:
            light.close()
    logger.info("status light: stopped, LEDs restored")
    return 0
