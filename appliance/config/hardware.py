"""GPIO pin assignments, validated before any pin is touched.

Pins are BCM (Broadcom GPIO) numbers, 2-27 on a Raspberry Pi's 40-pin header (0 and 1 are the HAT
EEPROM bus and are refused). Every device names its pin(s) here, so a pin used twice is caught at
``layerwatch check-config``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from appliance.config.base import StrictModel

BcmPin = int
BCM_MIN, BCM_MAX = 2, 27


def _pin_field(description: str) -> BcmPin:
    return Field(ge=BCM_MIN, le=BCM_MAX, description=f"{description} (BCM number {BCM_MIN}-{BCM_MAX}).")


class LedConfig(StrictModel):
    """Status light: one LED on ``pin``, or an RGB LED on ``red``/``green``/``blue``."""

    pin: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="Single LED pin (BCM).")
    red: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="RGB LED red pin (BCM).")
    green: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="RGB LED green pin (BCM).")
    blue: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="RGB LED blue pin (BCM).")
    active_high: bool = Field(True, description="False for common-anode RGB LEDs (lit when the pin is low).")

    @model_validator(mode="after")
    def _one_kind(self) -> LedConfig:
        rgb = [self.red, self.green, self.blue]
        if self.pin is not None and any(p is not None for p in rgb):
            raise ValueError("set either pin (single LED) or red/green/blue (RGB LED), not both")
        if any(p is not None for p in rgb) and not all(p is not None for p in rgb):
            raise ValueError("an RGB LED needs all of red, green and blue")
        if self.pin is None and not any(p is not None for p in rgb):
            raise ValueError("set pin, or red, green and blue")
        return self

    def pins(self) -> dict[str, int]:
        named = {"pin": self.pin, "red": self.red, "green": self.green, "blue": self.blue}
        return {k: v for k, v in named.items() if v is not None}


class OutputPinConfig(StrictModel):
    """A digital output: buzzer or relay coil driver."""

    pin: BcmPin = _pin_field("Output pin")
    active_high: bool = Field(
        True, description="False when the board energises on a low pin (most relay boards)."
    )

    def pins(self) -> dict[str, int]:
        return {"pin": self.pin}


class ButtonConfig(StrictModel):
    """A push button between the pin and ground (internal pull-up)."""

    pin: BcmPin = _pin_field("Button pin")
    pull_up: bool = Field(True, description="Use the internal pull-up; wire the button to ground.")

    def pins(self) -> dict[str, int]:
        return {"pin": self.pin}


class HardwareConfig(StrictModel):
    """Status LED, buzzer, relay and button on GPIO; all optional, all off by default."""

    pin_factory: Literal["auto", "lgpio", "rpigpio", "pigpio", "native", "mock"] = Field(
        "auto", description="gpiozero pin factory; auto lets gpiozero choose (lgpio on Pi 5 and Jetson)."
    )
    status_led: LedConfig | None = Field(None, description="Status light.")
    buzzer: OutputPinConfig | None = Field(None, description="Alarm buzzer.")
    relay: OutputPinConfig | None = Field(None, description="Relay that cuts power or pulses a pause input.")
    button: ButtonConfig | None = Field(None, description="Acknowledge / test / recalibrate button.")
    fan_pin: BcmPin | None = Field(
        None, ge=BCM_MIN, le=BCM_MAX, description="PWM fan pin (used by layerwatch-fan)."
    )

    @model_validator(mode="after")
    def _no_pin_twice(self) -> HardwareConfig:
        seen: dict[int, str] = {}
        devices: dict[str, dict[str, int]] = {}
        for name in ("status_led", "buzzer", "relay", "button"):
            device = getattr(self, name)
            if device is not None:
                devices[name] = device.pins()
        if self.fan_pin is not None:
            devices["fan_pin"] = {"pin": self.fan_pin}
        for name, pins in devices.items():
            for role, pin in pins.items():
                where = f"{name}.{role}" if name != "fan_pin" else name
                if pin in seen:
                    raise ValueError(f"BCM pin {pin} is used twice: by {seen[pin]} and by {where}")
                seen[pin] = where
        return self

    @property
    def any_device(self) -> bool:
        return any(getattr(self, n) is not None for n in ("status_led", "buzzer", "relay", "button"))
