"""The relay: the configured action on a confirmed failure, after a countdown an acknowledge cancels.

On an alert :meth:`RelayController.start_countdown` waits ``alarm.countdown_s`` seconds (the same
countdown the printer-control integration uses), then acts:

* ``cut_power``: the printer's power goes off and stays off until a ``relay`` command turns it
  back or the service restarts (a power-cycled printer boots idle; it never resumes the print);
* ``pulse_pause``: the contacts close for ``relay.pulse_s`` across the printer's pause (or
  filament-runout) input, then open again.

An ``acknowledge`` during the countdown cancels it: a person has looked.

**Safe state.** The coil is *released* whenever the detector is not in control, because that is
the only state a board without power can hold; ``relay.safe_state`` says what that means for the
printer, and the wiring makes it so (see :class:`appliance.config.hardware.RelayConfig`):

* service stop, and any crash Python survives: the board sink's ``stop()`` releases the coil
  before gpiozero frees the pin (which then floats to the relay board's own idle level);
* a hard crash (SIGKILL, segfault, watchdog kill): ``layerwatch.service`` runs
  ``python -m appliance.hardware.relay --release`` as ``ExecStopPost=``, which drives the pin to
  released and frees it (this module's :func:`main`);
* power loss: the coil drops out by itself.

With ``safe_state = "printer_off"`` (NO contacts) :meth:`arm` energises the coil at start so the
printer has power while it is watched.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any

from appliance.config.hardware import RelayConfig

logger = logging.getLogger(__name__)


class RelayController:
    """Countdown, action and safe state of one relay (a gpiozero ``OutputDevice``)."""

    def __init__(self, relay: Any, config: RelayConfig, countdown_s: float):
        self.relay = relay
        self.config = config
        self.countdown_s = countdown_s
        self._lock = threading.Lock()
        self._countdowns: dict[str, threading.Event] = {}
        self._pulse_abort = threading.Event()
        self.fired: list[str] = []  # cameras whose countdown ran out (for the log and tests)

    # -- coil states -----------------------------------------------------------------------
    @property
    def running_state(self) -> bool:
        """Coil energised while watching: only for printer_off (NO contacts)."""
        return self.config.safe_state == "printer_off"

    def arm(self) -> None:
        """Enter the watching state (energised for printer_off, released for printer_on)."""
        self._set(self.running_state, "armed")

    def release(self) -> None:
        """The safe state: coil released. Cancels every countdown and pulse first."""
        self.cancel(None, why="stop")
        self._pulse_abort.set()
        self._set(False, "released (safe state)")

    def manual(self, energise: bool) -> None:
        """A ``relay`` command: coil on or off by hand (MQTT switch, API)."""
        self.cancel(None, why="manual relay command")
        self._set(bool(energise), "manual")

    def _set(self, energised: bool, why: str) -> None:
        if self.relay.closed:
            return
        if energised:
            self.relay.on()
        else:
            self.relay.off()
        logger.info("relay coil %s (%s)", "energised" if energised else "released", why)

    # -- the countdown ---------------------------------------------------------------------
    @property
    def counting(self) -> list[str]:
        with self._lock:
            return sorted(self._countdowns)

    def start_countdown(self, camera: str) -> None:
        """Act in ``countdown_s`` seconds unless :meth:`cancel` is called first."""
        with self._lock:
            if camera in self._countdowns:
                return  # a repeat alert does not restart a running countdown
            cancel = threading.Event()
            self._countdowns[camera] = cancel
        logger.warning(
            "relay: %s in %.0f s for camera %s unless acknowledged",
            self.config.action, self.countdown_s, camera,
        )  # fmt: skip
        threading.Thread(
            target=self._countdown, args=(camera, cancel), name=f"relay-countdown-{camera}", daemon=True
        ).start()

    def cancel(self, camera: str | None, why: str = "acknowledged") -> bool:
        """Cancel the countdown of ``camera`` (None: all); True if one was running."""
        with self._lock:
            names = [n for n in self._countdowns if camera in (None, n)]
            for name in names:
                self._countdowns.pop(name).set()
        for name in names:
            logger.info("relay countdown for camera %s cancelled (%s)", name, why)
        return bool(names)

    def _countdown(self, camera: str, cancel: threading.Event) -> None:
        if cancel.wait(self.countdown_s):
            return
        with self._lock:
            if self._countdowns.get(camera) is not cancel:
                return
            del self._countdowns[camera]
        self.fired.append(camera)
        self.act(camera)

    def act(self, camera: str) -> None:
        """The configured action, now."""
        try:
            if self.config.action == "cut_power":
                # printer_on wiring (NC): energise to open; printer_off wiring (NO): release
                self._set(not self.running_state, f"printer power cut for camera {camera}")
                return
            self._pulse_abort.clear()
            self._set(True, f"pause pulse for camera {camera}")
            self._pulse_abort.wait(self.config.pulse_s)
            self._set(False, "pause pulse over")
        except Exception as exc:  # the device was closed under us (service stopping)
            logger.debug("relay action ended: %s", exc)


def release_pin(config: RelayConfig, pin_factory: Any = None) -> None:
    """Drive the relay's pin to released and free it (the ``ExecStopPost=`` safety net)."""
    from gpiozero import OutputDevice

    device = OutputDevice(
        config.pin, active_high=config.active_high, initial_value=False, pin_factory=pin_factory
    )
    device.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m appliance.hardware.relay --release --config FILE``: release the relay coil."""
    parser = argparse.ArgumentParser(prog="python -m appliance.hardware.relay")
    parser.add_argument("--release", action="store_true", required=True, help="release the relay coil")
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    from appliance.config import load_config
    from appliance.errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"relay: {exc}", flush=True)
        return 78
    relay = config.hardware.relay
    if relay is None:
        return 0
    from appliance.hardware.board import make_pin_factory

    release_pin(relay, make_pin_factory(config.hardware.pin_factory))
    print(f"relay on BCM {relay.pin} released", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
