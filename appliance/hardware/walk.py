"""``layerwatch test --hardware``: drive each configured part once, so a person sees the wiring is right.

The walk only drives pins: it analyses no frame and needs no camera. Parts, in this order (the
wiring of each is in ``docs/hardware.md``; pins are BCM numbers, shown with their header pin):

============= ==================================================================================
part          what happens
============= ==================================================================================
status_led    lit for ``step_s`` (1 s); an RGB LED shows red, green, blue for ``step_s`` each
buzzer        one beep of ``beep_s`` (0.2 s; a tonal piezo plays ``buzzer.chirp_hz``)
relay         a warning says what the contacts switch; after ``relay_warning_s`` (3 s, Ctrl-C
              stops) the coil is energised (it clicks) for ``step_s``, then released
fan           100 % duty for ``step_s``, then stopped for ``step_s`` (PWM at
              ``fan.pwm_frequency_hz``; a Jetson sysfs fan is left at full speed, its resting state)
button        "press the button now": waits up to ``button_s`` (5 s) for a press
============= ==================================================================================

Each part gets one line as it runs (the relay two: its warning first) and one entry in the JSON
summary: ``ok``, ``skipped`` (not configured, or ``--skip``), ``not_pressed`` (the button, which
cannot tell a missed press from a wiring fault) or ``failed`` (with the reason). The devices are
the service's own (:class:`~appliance.hardware.board.LayerwatchBoard` with one member,
:class:`~appliance.fan.backends.GpioPwmFan`), so active-low relays, common-anode LEDs, tonal
buzzers and pull-ups behave as in the service; each is closed before the next part starts, the relay
always released first, also on Ctrl-C.

The pin factory is resolved before the first pin is touched: with no GPIO (not a Raspberry Pi, no
lgpio) the walk stops with :class:`~appliance.errors.HardwareError` naming why. A pin another
process holds (``layerwatch.service`` or ``layerwatch-fan.service`` running: lgpio says "GPIO busy",
gpiozero's own ``GPIOPinInUse``) fails that part with a line saying which service to stop.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from appliance.config.hardware import HardwareConfig
from appliance.errors import HardwareError

logger = logging.getLogger(__name__)

PARTS = ("status_led", "buzzer", "relay", "fan", "button")
POLL_S = 0.05  # seconds between readings of the button while waiting for a press
RGB_COLOURS = (("red", (1, 0, 0)), ("green", (0, 1, 0)), ("blue", (0, 0, 1)))


@dataclass
class WalkTimes:
    """How long each step lasts, in seconds (short values make the walk fast in tests)."""

    step_s: float = 1.0
    beep_s: float = 0.2
    relay_warning_s: float = 3.0
    button_s: float = 5.0


@dataclass
class PartResult:
    """One part's outcome: ``ok``, ``skipped``, ``not_pressed`` or ``failed``, with its BCM pins."""

    part: str
    status: Literal["ok", "skipped", "not_pressed", "failed"]
    pins: dict[str, int] = field(default_factory=dict)
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": self.status, "pins": self.pins, "detail": self.detail}
        if self.part == "button" and self.status in ("ok", "not_pressed"):
            entry["pressed"] = self.status == "ok"
        return entry


def resolve_pin_factory(hardware: HardwareConfig) -> Any:
    """The gpiozero pin factory the walk drives; :class:`HardwareError` when there is no GPIO here.

    ``mock`` gets mock pins that can do PWM (fan, piezo); ``auto`` is gpiozero's own choice
    (``GPIOZERO_PIN_FACTORY``, else lgpio, RPi.GPIO, pigpio, native), tried here rather than at the
    first device so that its failure is one clear message instead of a traceback."""
    if hardware.pin_factory == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    from appliance.hardware.board import make_pin_factory

    if hardware.pin_factory != "auto":
        return make_pin_factory(hardware.pin_factory)  # HardwareError naming the factory
    from gpiozero import Device

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except Exception as exc:
            tried = "; ".join(str(w.message) for w in caught) or str(exc)
            raise HardwareError(
                f"no GPIO on this machine: gpiozero could not start a pin factory ({tried}). Run "
                "`layerwatch test --hardware` on the Raspberry Pi the parts are wired to (Raspberry Pi OS: "
                "`sudo apt install python3-lgpio`)"
            ) from exc
    return Device.pin_factory


def part_pins(hardware: HardwareConfig, part: str) -> dict[str, int] | None:
    """The part's BCM pins; None if it is not configured; {} for a fan on the sysfs node (no GPIO)."""
    if part == "fan":
        from appliance.fan.backends import choose_backend

        if choose_backend(hardware) == "none":
            return None
        return {"pin": hardware.fan_pin} if hardware.fan_pin is not None else {}
    device = getattr(hardware, part)
    return None if device is None else dict(device.pins())


def pins_in_use(exc: BaseException) -> bool:
    """True if ``exc`` (or what caused it) says a pin is held already (by this or another process)."""
    from gpiozero.exc import GPIOPinInUse

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, GPIOPinInUse) or "busy" in str(seen).lower() or "in use" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class HardwareWalk:
    """Runs the steps on ``pin_factory``; ``sleep`` and ``out`` are injectable for tests."""

    def __init__(
        self,
        hardware: HardwareConfig,
        pin_factory: Any,
        times: WalkTimes | None = None,
        skip: Collection[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        out: TextIO | None = None,
    ):
        import sys

        self.hardware = hardware
        self.factory = pin_factory
        self.times = times or WalkTimes()
        self.skip = set(skip)
        self.sleep = sleep
        self.out = out or sys.stdout
        self._line_open = False

    # -- output ----------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self._line_open = not text.endswith("\n")

    def header(self, pin: int) -> str:
        """``BCM 17 (header pin 11)``; just ``BCM 17`` where the board's header is unknown (Jetson)."""
        try:
            _, number = self.factory.board_info.physical_pin(f"GPIO{pin}")
        except Exception:
            return f"BCM {pin}"
        return f"BCM {pin} (header pin {number})"

    def _pins_text(self, pins: dict[str, int]) -> str:
        return ", ".join(
            f"{role} {self.header(p)}" if role != "pin" else self.header(p) for role, p in pins.items()
        )

    # -- the walk --------------------------------------------------------------------------
    def run(self) -> list[PartResult]:
        """Every part once, in :data:`PARTS` order; one line each as it runs."""
        steps: dict[str, Callable[[dict[str, int]], PartResult]] = {
            "status_led": self._led, "buzzer": self._buzzer, "relay": self._relay, "fan": self._fan,
            "button": self._button,
        }  # fmt: skip
        results = []
        for part in PARTS:
            pins = part_pins(self.hardware, part)
            if pins is None:
                key = "fan_pin" if part == "fan" else part
                result = PartResult(part, "skipped", {}, f"not configured: no hardware.{key}")
                self._write(f"{part}: skipped ({result.detail})\n")
            elif part in self.skip:
                result = PartResult(part, "skipped", pins, f"--skip {part}")
                self._write(f"{part}: skipped (--skip {part})\n")
            else:
                try:
                    result = steps[part](pins)
                except Exception as exc:
                    result = PartResult(part, "failed", pins, self._explain(part, pins, exc))
                    self._write(f"{' ' if self._line_open else part + ': '}FAILED: {result.detail}\n")
                    logger.debug("hardware walk: %s failed", part, exc_info=True)
            results.append(result)
        return results

    def _explain(self, part: str, pins: dict[str, int], exc: BaseException) -> str:
        bcm = "/".join(str(p) for p in pins.values())
        if pins_in_use(exc):
            service = "layerwatch-fan.service" if part == "fan" else "layerwatch.service"
            unit = service.removesuffix(".service")
            return (
                f"BCM {bcm} is in use by another program, most likely {service}: stop it first "
                f"(sudo systemctl stop {unit}), run the test, then sudo systemctl start {unit}"
            )
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def _board(self, part: str) -> Any:
        """A :class:`LayerwatchBoard` with only ``part`` as its member (the service's own devices)."""
        from appliance.hardware.board import LayerwatchBoard

        only = {name: None for name in ("status_led", "buzzer", "relay", "button")}
        only[part] = getattr(self.hardware, part)
        return LayerwatchBoard(self.hardware.model_copy(update=only), pin_factory=self.factory)

    def _led(self, pins: dict[str, int]) -> PartResult:
        led = self.hardware.status_led
        step = self.times.step_s
        rgb = led is not None and led.rgb
        what = f"red, green, blue for {step:g} s each" if rgb else f"on for {step:g} s"
        self._write(f"status_led: {'RGB LED' if rgb else 'LED'} on {self._pins_text(pins)}: {what} ...")
        with self._board("status_led") as board:
            device = board.device("status_led")
            for _, colour in RGB_COLOURS if rgb else (("on", True),):
                device.value = colour
                self.sleep(step)
            device.off()
        self._write(" ok\n")
        return PartResult("status_led", "ok", pins, what)

    def _buzzer(self, pins: dict[str, int]) -> PartResult:
        buzzer = self.hardware.buzzer
        assert buzzer is not None
        beep = self.times.beep_s
        what = f"one {beep:g} s beep" + (
            f" at {buzzer.chirp_hz:g} Hz (passive piezo)" if buzzer.tonal else ""
        )
        self._write(f"buzzer: {what} on {self._pins_text(pins)} ...")
        with self._board("buzzer") as board:
            device = board.device("buzzer")
            if buzzer.tonal:
                from gpiozero.tones import Tone

                device.play(Tone.from_frequency(buzzer.chirp_hz))
                self.sleep(beep)
                device.stop()
            else:
                device.on()
                self.sleep(beep)
                device.off()
        self._write(" ok\n")
        return PartResult("buzzer", "ok", pins, what)

    def relay_warning(self) -> str:
        """What energising the relay does to the printer, from ``action`` and ``safe_state``."""
        relay = self.hardware.relay
        assert relay is not None
        step = self.times.step_s
        if relay.action == "pulse_pause":
            switched = "the printer's pause input (pulse_pause): a running print pauses"
        elif relay.safe_state == "printer_on":
            switched = (
                f"the printer's power through the NC contacts (cut_power, safe_state printer_on): the "
                f"printer is OFF for {step:g} s and a running print is lost"
            )
        else:
            switched = (
                f"the printer's power through the NO contacts (cut_power, safe_state printer_off): the "
                f"printer is ON for {step:g} s"
            )
        return (
            f"relay: WARNING: the relay on {self._pins_text({'pin': relay.pin})} will click: energised for "
            f"{step:g} s, then released. It switches {switched}. Starting in "
            f"{self.times.relay_warning_s:g} s: Ctrl-C stops, --skip relay leaves it out\n"
        )

    def _relay(self, pins: dict[str, int]) -> PartResult:
        relay = self.hardware.relay
        assert relay is not None
        level = "pin high" if relay.active_high else "active-low: pin low"
        what = f"energised for {self.times.step_s:g} s ({level}), then released"
        with self._board("relay") as board:  # claimed released; closing releases first, also on Ctrl-C
            device = board.device("relay")
            self._write(self.relay_warning())
            self.sleep(self.times.relay_warning_s)
            self._write(f"relay: {what} ...")
            device.on()
            self.sleep(self.times.step_s)
            device.off()
        self._write(" ok\n")
        return PartResult("relay", "ok", pins, what)

    def _fan(self, pins: dict[str, int]) -> PartResult:
        from appliance.fan.backends import open_backend

        step = self.times.step_s
        fan = self.hardware.fan
        if pins:
            where = f"{self._pins_text(pins)}, PWM {fan.pwm_frequency_hz:g} Hz"
        else:
            where = f"{fan.sysfs_path}, left at full speed after"
        what = f"100 % for {step:g} s, then stopped for {step:g} s"
        self._write(f"fan: {what} on {where} ...")
        backend = open_backend(self.hardware, self.factory)  # starts at full speed
        if backend is None:  # the node went away since choose_backend looked
            raise HardwareError("no fan found")
        try:
            backend.set(1.0)
            self.sleep(step)
            backend.set(0.0)
            self.sleep(step)
        finally:
            backend.close()
        self._write(" ok\n")
        return PartResult("fan", "ok", pins, what)

    def _button(self, pins: dict[str, int]) -> PartResult:
        button = self.hardware.button
        assert button is not None
        wait = self.times.button_s
        wired = "button between the pin and GND" if button.pull_up else "button between the pin and 3.3 V"
        with self._board("button") as board:
            device = board.device("button")
            if device.is_pressed:
                raise HardwareError(
                    f"reads pressed before you were asked: a stuck button, or not wired as the config says "
                    f"({wired}, pull_up = {str(button.pull_up).lower()})"
                )
            pressed = threading.Event()
            device.when_pressed = pressed.set
            self._write(f"button: press the button on {self._pins_text(pins)} now (waiting {wait:g} s) ...")
            for _ in range(max(1, round(wait / POLL_S))):
                if pressed.is_set() or device.is_pressed:
                    break
                self.sleep(POLL_S)
            was_pressed = pressed.is_set() or device.is_pressed
            device.when_pressed = None
        if was_pressed:
            self._write(" pressed, ok\n")
            return PartResult("button", "ok", pins, "pressed")
        detail = f"not pressed within {wait:g} s; if you pressed it, check the wiring ({wired})"
        self._write(f" {detail}\n")
        return PartResult("button", "not_pressed", pins, detail)


def run_walk(
    hardware: HardwareConfig,
    times: WalkTimes | None = None,
    skip: Collection[str] = (),
    pin_factory: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    out: TextIO | None = None,
) -> tuple[int, dict[str, Any]]:
    """The walk with its summary: (exit code, JSON summary). Exit 1 if a part failed, else 0.

    The pin factory is resolved (and a missing GPIO reported) only when a GPIO part is to be driven."""
    wanted = [p for p in PARTS if p not in skip and part_pins(hardware, p)]
    if pin_factory is None and wanted:
        pin_factory = resolve_pin_factory(hardware)
    walk = HardwareWalk(hardware, pin_factory, times, skip, sleep, out)
    factory_name = type(pin_factory).__name__ if pin_factory is not None else "none"
    walk._write(f"layerwatch hardware test: pin factory {factory_name}, steps of {walk.times.step_s:g} s\n")
    results = walk.run()
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "not_pressed", "skipped", "failed")}
    walk._write("summary: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n) + "\n")
    summary = {
        "hardware": {r.part: r.to_json() for r in results},
        "pin_factory": factory_name,
        "failed": counts["failed"],
    }
    return (1 if counts["failed"] else 0), summary
