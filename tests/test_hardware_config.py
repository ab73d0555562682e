"""The [hardware] table: the pin must-fail fixtures say *why* (not just where), and good configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.config.hardware import BuzzerConfig, HardwareConfig
from appliance.errors import ConfigError

MUST_FAIL = Path(__file__).parent / "fixtures" / "config" / "must_fail"

WHY = {
    "pin_used_twice": "BCM pin 17 is used twice: by buzzer.pin and by relay.pin",
    "pin_rgb_channel_twice": "BCM pin 5 is used twice: by status_led.red and by status_led.green",
    "pin_fan_on_button": "BCM pin 18 is used twice: by button.pin and by fan_pin",
    "pin_out_of_range": "less than or equal to 27",
    "pin_zero_reserved": "greater than or equal to 2",
    "pin_fan_out_of_range": "less than or equal to 27",
    "pin_led_single_and_rgb": "not both",
    "pin_rgb_incomplete": "needs all of red, green and blue",
    "pin_tonal_active_low": "cannot be active-low",
    "pin_relay_pulse_printer_off": "printer_on",
    "pin_fan_pin_with_sysfs_backend": "fan_pin is set but fan.backend is sysfs",
    "pin_fan_gpio_without_pin": "needs fan_pin",
    "pin_button_hold_order": "very_long_press_s must be longer",
    "pin_fan_curve_descending": "strictly ascending",
    "pin_thermal_hysteresis_inverted": "throttle_below_c must be lower",
}


@pytest.mark.parametrize("name", sorted(WHY))
def test_pin_fixture_reason(name: str):
    with pytest.raises(ConfigError) as info:
        load_config(MUST_FAIL / f"{name}.toml", environ={})
    assert any(WHY[name] in message for _, message in info.value.problems), info.value.problems


def test_every_pin_fixture_has_a_reason():
    assert {p.stem for p in MUST_FAIL.glob("pin_*.toml")} == set(WHY)


def test_defaults_and_a_full_board():
    assert HardwareConfig().any_device is False
    hardware = HardwareConfig.model_validate(
        {
            "status_led": {"red": 5, "green": 6, "blue": 13, "active_high": False},
            "buzzer": {"pin": 17, "tonal": True, "alarm_tones_hz": [440, 3520]},
            "relay": {"pin": 27, "active_high": False, "action": "pulse_pause", "pulse_s": 1},
            "button": {"pin": 26},
            "fan_pin": 18,
            "fan": {"backend": "gpio", "curve": [[40, 20], [70, 100]]},
        }
    )
    assert hardware.any_device and hardware.status_led is not None and hardware.status_led.rgb
    assert hardware.buzzer is not None
    middle, octaves = hardware.buzzer.tone_range()
    assert middle / 2**octaves <= 440 and middle * 2**octaves >= 3520


def test_tone_range_covers_the_chirp():
    buzzer = BuzzerConfig(pin=17, tonal=True, alarm_tones_hz=[2000], chirp_hz=2000)
    middle, octaves = buzzer.tone_range()
    assert middle == pytest.approx(2000) and octaves == 1
