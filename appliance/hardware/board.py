"""The Layerwatch board: status light, buzzer, relay and button as one gpiozero composite device.

Wiring (BCM numbers from ``[hardware]``; details and pictures in ``docs/hardware.md``):

* **status light**: a single LED (``status_led.pin``, through a 330 Ω resistor to ground) or an
  RGB LED (``red``/``green``/``blue``, one resistor each). A common-anode RGB LED has its anode on
  3.3 V and is lit when a pin is *low*: set ``active_high = false``.
* **buzzer**: an active buzzer (``tonal = false``, switched on/off, through a transistor if it
  draws more than ~10 mA) or a passive piezo (``tonal = true``, PWM tones via gpiozero's
  ``TonalBuzzer``).
* **relay**: a relay board's IN pin. Most cheap opto-isolated boards energise the coil when IN is
  *low*: ``active_high = false``.
* **button**: a push button from the pin to ground; the internal pull-up holds the pin high.

Every output starts in its safe state (LED dark, buzzer silent, relay coil released: gpiozero's
``initial_value``); closing the board (or leaving its ``with`` block) drives the relay to released
before the pins are freed, and a second ``close()`` does nothing. This module imports gpiozero
and is itself only imported by :func:`appliance.hardware.board_sink.create_sinks`.
"""

from __future__ import annotations

import logging
from typing import Any

from gpiozero import LED, RGBLED, Button, Buzzer, CompositeDevice, Device, OutputDevice, TonalBuzzer
from gpiozero.tones import Tone

from appliance.config.hardware import HardwareConfig
from appliance.errors import HardwareError

logger = logging.getLogger(__name__)


def make_pin_factory(name: str) -> Any:
    """The gpiozero pin factory for ``hardware.pin_factory``; None for ``auto`` (gpiozero's own
    choice, which honours ``GPIOZERO_PIN_FACTORY`` and an already-set ``Device.pin_factory``)."""
    if name == "auto":
        return None
    from importlib.metadata import entry_points

    for entry in entry_points(group="gpiozero_pin_factories"):
        if entry.name == name:
            try:
                return entry.load()()
            except Exception as exc:
                raise HardwareError(f"gpiozero pin factory {name!r} cannot start: {exc}") from exc
    raise HardwareError(f"gpiozero pin factory {name!r} is not installed")


class LayerwatchBoard(CompositeDevice):  # type: ignore[misc]
    """The configured devices as named members: ``status_led``, ``buzzer``, ``relay``,
    ``button`` (each only if configured; :meth:`device` returns None for a missing one)."""

    def __init__(self, config: HardwareConfig, pin_factory: Any = None):
        if not config.any_device:
            raise HardwareError("no status_led, buzzer, relay or button is configured")
        if pin_factory is None:
            pin_factory = make_pin_factory(config.pin_factory)
        devices: dict[str, Device] = {}
        try:
            self._build(config, pin_factory, devices)
        except Exception as exc:
            for device in devices.values():
                device.close()
            if isinstance(exc, HardwareError):
                raise
            raise HardwareError(f"GPIO setup failed: {exc}") from exc
        self.rgb = config.status_led is not None and config.status_led.rgb
        self.tonal = config.buzzer is not None and config.buzzer.tonal
        super().__init__(
            _order=[n for n in ("status_led", "buzzer", "relay", "button") if n in devices],
            pin_factory=pin_factory,
            **devices,
        )
        logger.info("board: %s", ", ".join(f"{name} {device!r}" for name, device in devices.items()))

    @staticmethod
    def _build(config: HardwareConfig, factory: Any, devices: dict[str, Device]) -> None:
        led = config.status_led
        if led is not None:
            if led.rgb:
                devices["status_led"] = RGBLED(
                    led.red, led.green, led.blue, active_high=led.active_high, initial_value=(0, 0, 0),
                    pwm=False, pin_factory=factory,
                )  # fmt: skip
            else:
                devices["status_led"] = LED(
                    led.pin, active_high=led.active_high, initial_value=False, pin_factory=factory
                )
        buzzer = config.buzzer
        if buzzer is not None:
            if buzzer.tonal:
                middle, octaves = buzzer.tone_range()
                devices["buzzer"] = TonalBuzzer(
                    buzzer.pin, initial_value=None, mid_tone=Tone.from_frequency(middle), octaves=octaves,
                    pin_factory=factory,
                )  # fmt: skip
            else:
                devices["buzzer"] = Buzzer(
                    buzzer.pin, active_high=buzzer.active_high, initial_value=False, pin_factory=factory
                )
        relay = config.relay
        if relay is not None:
            # released (inactive) from the first instant: gpiozero drives the pin before returning
            devices["relay"] = OutputDevice(
                relay.pin, active_high=relay.active_high, initial_value=False, pin_factory=factory
            )
        button = config.button
        if button is not None:
            devices["button"] = Button(
                button.pin, pull_up=button.pull_up, bounce_time=button.bounce_s or None,
                hold_time=button.long_press_s, pin_factory=factory,
            )  # fmt: skip

    def device(self, name: str) -> Any:
        """The named member, or None if it is not configured (or the board is closed)."""
        return self._named.get(name) if not self.closed else None

    def close(self) -> None:
        """Silence and release every output, then free the pins. Idempotent."""
        if not getattr(self, "_all", None):  # closed already, or construction failed
            return
        relay = self._named.get("relay")
        if relay is not None and not relay.closed:
            relay.off()  # the coil's safe state is released, whatever the wiring
        super().close()
        logger.info("board closed: relay released, pins freed")
