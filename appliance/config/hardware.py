"""The ``[hardware]`` table: GPIO pins of the board, the fan service and the thermal throttle.

Pins are BCM (Broadcom GPIO) numbers, 2-27 on a Raspberry Pi's 40-pin header (0 and 1 are the HAT
EEPROM bus and are refused). Every device names its pin(s) here, so a pin used twice, or one device
asked to be two kinds of thing at once, is caught by ``layerwatch check-config`` before any pin is
touched. Times are seconds, temperatures degrees Celsius, duties percent (0-100). The wiring is in
``docs/hardware.md``.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from appliance.config.base import StrictModel

BcmPin = int
BCM_MIN, BCM_MAX = 2, 27
TONE_MIN_HZ, TONE_MAX_HZ = 100.0, 10000.0


def _pin_field(description: str) -> BcmPin:
    return Field(ge=BCM_MIN, le=BCM_MAX, description=f"{description} (BCM number {BCM_MIN}-{BCM_MAX}).")


class LedConfig(StrictModel):
    """Status light: one LED on ``pin``, or an RGB LED on ``red``/``green``/``blue``.

    The kind follows from the pins given: ``pin`` alone is a single LED (patterns by timing only),
    ``red``+``green``+``blue`` an RGB LED (colour and timing).
    """

    pin: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="Single LED pin (BCM).")
    red: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="RGB LED red pin (BCM).")
    green: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="RGB LED green pin (BCM).")
    blue: BcmPin | None = Field(None, ge=BCM_MIN, le=BCM_MAX, description="RGB LED blue pin (BCM).")
    active_high: bool = Field(True, description="False for common-anode RGB LEDs (lit when the pin is low).")
    error_after_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds beyond the analysis interval without an analysed frame from a camera that "
        "is not offline before the light shows the error pattern (errors in a row, back-off, hang).",
    )

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

    @property
    def rgb(self) -> bool:
        return self.pin is None

    def pins(self) -> dict[str, int]:
        named = {"pin": self.pin, "red": self.red, "green": self.green, "blue": self.blue}
        return {k: v for k, v in named.items() if v is not None}


class OutputPinConfig(StrictModel):
    """A digital output."""

    pin: BcmPin = _pin_field("Output pin")
    active_high: bool = Field(
        True, description="False when the board energises on a low pin (most relay boards)."
    )

    def pins(self) -> dict[str, int]:
        return {"pin": self.pin}


class BuzzerConfig(OutputPinConfig):
    """An active buzzer (sounds when powered) or, with ``tonal``, a passive piezo driven by PWM."""

    tonal: bool = Field(
        False, description="Passive piezo played with PWM tones (gpiozero TonalBuzzer); needs active_high."
    )
    alarm_on_s: float = Field(0.4, gt=0, le=10, description="Seconds each alarm beep sounds.")
    alarm_off_s: float = Field(0.3, ge=0, le=10, description="Seconds of silence between alarm beeps.")
    alarm_tones_hz: list[float] = Field(
        default_factory=lambda: [2000.0, 1500.0],
        min_length=1,
        description=f"Tonal buzzer only: the alarm cycles through these tones (Hz, "
        f"{TONE_MIN_HZ:.0f}-{TONE_MAX_HZ:.0f}).",
    )
    chirp_s: float = Field(0.08, gt=0, le=2, description="Length of the start-up chirp (seconds).")
    chirp_hz: float = Field(
        2500.0, ge=TONE_MIN_HZ, le=TONE_MAX_HZ, description="Tonal buzzer only: the chirp's tone (Hz)."
    )
    test_s: float = Field(3.0, gt=0, le=60, description="How long the test alarm (long button press) sounds.")

    @model_validator(mode="after")
    def _tonal(self) -> BuzzerConfig:
        if self.tonal and not self.active_high:
            raise ValueError("a tonal buzzer is driven by PWM and cannot be active-low")
        for tone in self.alarm_tones_hz:
            if not TONE_MIN_HZ <= tone <= TONE_MAX_HZ:
                raise ValueError(f"alarm tone {tone} Hz is outside {TONE_MIN_HZ:.0f}-{TONE_MAX_HZ:.0f} Hz")
        return self

    def tone_range(self) -> tuple[float, int]:
        """(middle tone in Hz, octaves) for gpiozero's TonalBuzzer so that every tone is playable."""
        tones = [*self.alarm_tones_hz, self.chirp_hz]
        low, high = min(tones), max(tones)
        middle = math.sqrt(low * high)
        return middle, max(1, math.ceil(math.log2(high / middle) + 1e-9))


class RelayConfig(OutputPinConfig):
    """The relay that acts on a confirmed failure, ``alarm.countdown_s`` after the alert.

    ``safe_state`` is what the printer gets whenever the detector is not in control: service
    stopped, crashed, or the board without power. The coil is always *released* then (a board
    without power cannot hold it), so the wiring decides: ``printer_on`` = printer wired through the
    relay's normally-closed (NC) contacts, a failure energises the coil; ``printer_off`` = printer
    wired through the normally-open (NO) contacts, the service energises the coil while it runs and
    a failure releases it.
    """

    action: Literal["cut_power", "pulse_pause"] = Field(
        "cut_power",
        description="cut_power: switch the printer's power off (until a relay command or restart); "
        "pulse_pause: close the contacts for pulse_s across the printer's pause/filament-runout input.",
    )
    pulse_s: float = Field(0.5, gt=0, le=10, description="pulse_pause: seconds the contacts stay closed.")
    safe_state: Literal["printer_on", "printer_off"] = Field(
        "printer_on",
        description="The printer's state when the detector is stopped, crashed or unpowered "
        "(printer_on: NC contacts; printer_off: NO contacts). pulse_pause needs printer_on.",
    )

    @model_validator(mode="after")
    def _roles(self) -> RelayConfig:
        if self.action == "pulse_pause" and self.safe_state == "printer_off":
            raise ValueError(
                "pulse_pause closes a pause input briefly: its resting state is printer_on, not printer_off"
            )
        return self


class ButtonConfig(StrictModel):
    """A push button between the pin and ground (internal pull-up): short, long and very long press."""

    pin: BcmPin = _pin_field("Button pin")
    pull_up: bool = Field(True, description="Use the internal pull-up; wire the button to ground.")
    bounce_s: float = Field(0.05, ge=0, le=1, description="Debounce time in seconds (0: none).")
    long_press_s: float = Field(
        3.0, gt=0, le=60, description="Held at least this long (seconds): run the test alarm."
    )
    very_long_press_s: float = Field(
        10.0, gt=0, le=120, description="Held at least this long (seconds): recalibrate the cameras."
    )

    @model_validator(mode="after")
    def _order(self) -> ButtonConfig:
        if self.very_long_press_s <= self.long_press_s:
            raise ValueError("very_long_press_s must be longer than long_press_s")
        return self

    def pins(self) -> dict[str, int]:
        return {"pin": self.pin}


class FanConfig(StrictModel):
    """The ``layerwatch-fan`` service: CPU temperature to fan duty, on its own so it survives a
    detector crash. The gpio backend uses ``hardware.fan_pin``."""

    backend: Literal["auto", "gpio", "sysfs", "none"] = Field(
        "auto",
        description="gpio: PWM on hardware.fan_pin (gpiozero); sysfs: the Jetson pwm-fan node "
        "(sysfs_path); auto: gpio if fan_pin is set, else sysfs if the node exists, else none.",
    )
    active_high: bool = Field(True, description="gpio: False if the fan runs when the pin is low.")
    pwm_frequency_hz: float = Field(100.0, gt=0, le=10000, description="gpio: PWM frequency (Hz).")
    sysfs_path: Path = Field(
        Path("/sys/devices/pwm-fan/target_pwm"), description="sysfs: the pwm-fan target_pwm node."
    )
    sysfs_max: int = Field(255, ge=1, le=65535, description="sysfs: the value written for 100 % duty.")
    curve: list[tuple[float, float]] = Field(
        default_factory=lambda: [(45.0, 0.0), (50.0, 30.0), (65.0, 60.0), (75.0, 100.0)],
        min_length=1,
        description="[temperature °C, duty %] points, temperatures ascending, duties not falling; "
        "linear in between, flat outside.",
    )
    hysteresis_c: float = Field(
        3.0, ge=0, le=20, description="The duty only falls once the temperature is this many °C lower."
    )
    min_duty_percent: float = Field(
        25.0, ge=0, le=100, description="Lowest duty at which the fan still turns; smaller non-zero duties "
        "are raised to it.",
    )  # fmt: skip
    kick_percent: float = Field(
        100.0, ge=0, le=100, description="Duty for kick_s when the fan starts from standstill."
    )
    kick_s: float = Field(0.5, ge=0, le=10, description="Seconds of kick-start (0: none).")
    interval_s: float = Field(2.0, gt=0, le=60, description="Seconds between temperature readings.")
    state_file: Path = Field(
        Path("/run/layerwatch/fan.json"),
        description="Where the fan service writes its duty and temperature (read into telemetry).",
    )

    @model_validator(mode="after")
    def _curve(self) -> FanConfig:
        for (t0, d0), (t1, d1) in itertools.pairwise(self.curve):
            if t1 <= t0:
                raise ValueError("curve temperatures must be strictly ascending")
            if d1 < d0:
                raise ValueError("curve duties must not fall as the temperature rises")
        for _, duty in self.curve:
            if not 0 <= duty <= 100:
                raise ValueError(f"curve duty {duty} is outside 0-100 %")
        return self


class ThermalConfig(StrictModel):
    """The detector slows its analysis while the board is hot (telemetry: cpu_temperature_c,
    throttled, interval_scale, fan_duty)."""

    enabled: bool = Field(True, description="Read the CPU temperature and throttle when hot.")
    sensor_path: Path = Field(
        Path("/sys/class/thermal/thermal_zone0/temp"),
        description="Temperature file in millidegrees Celsius (also read by layerwatch-fan).",
    )
    throttle_above_c: float = Field(
        75.0, ge=30, le=110, description="Throttle from this CPU temperature (°C) on."
    )
    throttle_below_c: float = Field(
        68.0, ge=20, le=110, description="Stop throttling once the temperature falls below this (°C)."
    )
    interval_scale: float = Field(
        2.0, ge=1, le=10, description="While throttled the analysis interval is multiplied by this."
    )
    fan_state_max_age_s: float = Field(
        30.0, gt=0, description="Ignore the fan service's state file when older than this (seconds)."
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> ThermalConfig:
        if self.throttle_below_c >= self.throttle_above_c:
            raise ValueError("throttle_below_c must be lower than throttle_above_c")
        return self


class HardwareConfig(StrictModel):
    """Status LED, buzzer, relay and button on GPIO (all optional, all off by default), the fan
    service and the thermal throttle."""

    pin_factory: Literal["auto", "lgpio", "rpigpio", "pigpio", "native", "mock"] = Field(
        "auto", description="gpiozero pin factory; auto lets gpiozero choose (lgpio on Pi 5 and Jetson)."
    )
    status_led: LedConfig | None = Field(None, description="Status light.")
    buzzer: BuzzerConfig | None = Field(None, description="Alarm buzzer.")
    relay: RelayConfig | None = Field(None, description="Relay that cuts power or pulses a pause input.")
    button: ButtonConfig | None = Field(None, description="Acknowledge / test / recalibrate button.")
    fan_pin: BcmPin | None = Field(
        None, ge=BCM_MIN, le=BCM_MAX, description="PWM fan pin (gpio backend of layerwatch-fan)."
    )
    fan: FanConfig = Field(default_factory=FanConfig, description="The layerwatch-fan service.")
    thermal: ThermalConfig = Field(default_factory=ThermalConfig, description="Thermal throttling.")

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

    @model_validator(mode="after")
    def _fan_roles(self) -> HardwareConfig:
        if self.fan.backend == "gpio" and self.fan_pin is None:
            raise ValueError("fan.backend gpio needs fan_pin")
        if self.fan.backend in ("sysfs", "none") and self.fan_pin is not None:
            raise ValueError(f"fan_pin is set but fan.backend is {self.fan.backend}: remove one")
        return self

    @property
    def any_device(self) -> bool:
        return any(getattr(self, n) is not None for n in ("status_led", "buzzer", "relay", "button"))
