"""Where the fan duty goes: a gpiozero PWM pin, or the Jetson ``pwm-fan`` sysfs node.

* :class:`GpioPwmFan` - ``hardware.fan_pin`` through gpiozero's ``PWMOutputDevice`` at
  ``fan.pwm_frequency_hz`` (software PWM with lgpio/rpigpio; any BCM pin). Wire the fan through a
  logic-level N-MOSFET (or NPN transistor) on the low side, with a flyback diode; a 4-pin PWM fan's
  control wire can take the pin directly. The pin starts at full duty until the first reading.
* :class:`SysfsPwmFan` - the Jetson ``pwm-fan`` driver's ``target_pwm`` (0-255 by default,
  ``fan.sysfs_max``), written as the snapshot processor's Jetson fan control did; on exit it is
  left at full speed, so a stopped fan service never leaves the board uncooled. Stop NVIDIA's
  ``nvfancontrol`` service first, or the two fight over the node. The udev rule in
  ``udev/99-layerwatch.rules`` gives the ``gpio`` group write access to it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from appliance.config.hardware import HardwareConfig
from appliance.errors import HardwareError

logger = logging.getLogger(__name__)


class FanBackend(Protocol):
    name: str

    def set(self, duty: float) -> None:
        """Drive the fan at ``duty`` (0.0-1.0)."""

    def close(self) -> None:
        """Leave the fan (and free the pin). Idempotent."""


class GpioPwmFan:
    name = "gpio"

    def __init__(self, pin: int, active_high: bool, frequency_hz: float, pin_factory: Any = None):
        from gpiozero import PWMOutputDevice  # only the gpio backend needs gpiozero

        try:
            self.device = PWMOutputDevice(
                pin, active_high=active_high, initial_value=1.0, frequency=frequency_hz,
                pin_factory=pin_factory,
            )  # fmt: skip
        except Exception as exc:
            # gpiozero's PinPWMUnsupported and friends carry no message: name the error then
            reason = str(exc) or f"{type(exc).__name__} (the pin factory cannot drive PWM on this pin)"
            raise HardwareError(f"fan PWM on BCM {pin} cannot start: {reason}") from exc

    def set(self, duty: float) -> None:
        self.device.value = min(1.0, max(0.0, duty))

    def close(self) -> None:
        self.device.close()  # idempotent in gpiozero


class SysfsPwmFan:
    name = "sysfs"

    def __init__(self, path: Path, maximum: int):
        self.path = path
        self.maximum = maximum
        self.closed = False
        self.set(1.0)

    def set(self, duty: float) -> None:
        value = round(min(1.0, max(0.0, duty)) * self.maximum)
        try:
            self.path.write_text(f"{value}\n")
        except OSError as exc:
            raise HardwareError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.set(1.0)
        except HardwareError as exc:
            logger.warning("fan left as it was: %s", exc)


def choose_backend(hardware: HardwareConfig) -> str:
    """``gpio``, ``sysfs`` or ``none`` for ``hardware.fan.backend`` (resolving ``auto``)."""
    backend = hardware.fan.backend
    if backend != "auto":
        return backend
    if hardware.fan_pin is not None:
        return "gpio"
    if hardware.fan.sysfs_path.exists():
        return "sysfs"
    return "none"


def open_backend(hardware: HardwareConfig, pin_factory: Any = None) -> FanBackend | None:
    """The configured fan, running at full speed; None when no fan is configured or found."""
    kind = choose_backend(hardware)
    fan = hardware.fan
    if kind == "gpio":
        if hardware.fan_pin is None:  # the config refuses this; kept for the type checker
            raise HardwareError("fan.backend gpio needs hardware.fan_pin")
        if pin_factory is None and hardware.pin_factory == "mock":
            # the mock factory's default pins have no PWM: the fan gets gpiozero's mock PWM pins
            from gpiozero.pins.mock import MockFactory, MockPWMPin

            pin_factory = MockFactory(pin_class=MockPWMPin)
        elif pin_factory is None and hardware.pin_factory != "auto":
            from appliance.hardware.board import make_pin_factory

            pin_factory = make_pin_factory(hardware.pin_factory)
        return GpioPwmFan(hardware.fan_pin, fan.active_high, fan.pwm_frequency_hz, pin_factory)
    if kind == "sysfs":
        return SysfsPwmFan(fan.sysfs_path, fan.sysfs_max)
    return None
