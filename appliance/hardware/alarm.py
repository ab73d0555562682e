"""The buzzer: a short chirp at start, an alarm on a confirmed failure until acknowledged.

The alarm beeps ``buzzer.alarm_on_s`` on / ``buzzer.alarm_off_s`` off (a tonal buzzer cycles
through ``buzzer.alarm_tones_hz``) until :meth:`BuzzerAlarm.silence` (an acknowledge: the button's
short press, MQTT, the API) or until ``alarm.buzzer_max_s`` seconds have passed, so an empty room is
not beeped at forever. The pattern runs on the alarm's own thread; every way out of it leaves the
buzzer silent. Works with gpiozero's ``Buzzer`` (on/off) and ``TonalBuzzer`` (``play``/``stop``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from typing import Any

from appliance.config.hardware import BuzzerConfig

logger = logging.getLogger(__name__)


class BuzzerAlarm:
    """Plays patterns on one buzzer; at most one pattern at a time (a new one replaces the old)."""

    def __init__(self, buzzer: Any, config: BuzzerConfig, max_s: float):
        self.buzzer = buzzer
        self.config = config
        self.max_s = max_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.silenced_by: str | None = None  # "acknowledge", "timeout", "stop" (for the log and tests)

    # -- the two sounds --------------------------------------------------------------------
    def _sound(self, tone_hz: float | None) -> None:
        if self.config.tonal:
            from gpiozero.tones import Tone  # only reached with a board, i.e. gpiozero is loaded

            self.buzzer.play(Tone.from_frequency(tone_hz or self.config.chirp_hz))
        else:
            self.buzzer.on()

    def _quiet(self) -> None:
        if self.buzzer.closed:
            return
        if self.config.tonal:
            self.buzzer.stop()
        else:
            self.buzzer.off()

    # -- patterns --------------------------------------------------------------------------
    def chirp(self) -> None:
        """One short beep (start-up, and the feedback that a long press was recognised)."""
        self._start("chirp", self.config.chirp_s, [(self.config.chirp_hz, self.config.chirp_s)])

    def sound(self, duration_s: float | None = None, reason: str = "alarm") -> None:
        """The alarm, for ``duration_s`` (default ``alarm.buzzer_max_s``) or until silenced."""
        duration = self.max_s if duration_s is None else duration_s
        tones = self.config.alarm_tones_hz if self.config.tonal else [0.0]
        cycle = [(tone, self.config.alarm_on_s) for tone in tones]
        logger.warning("buzzer: %s for up to %.0f s", reason, duration)
        self._start(reason, duration, cycle)

    def silence(self, why: str = "acknowledge") -> bool:
        """Stop whatever is sounding; True if something was."""
        with self._lock:
            thread = self._thread
            was_sounding = thread is not None and thread.is_alive()
            if was_sounding:
                self.silenced_by = why
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._quiet()
        if was_sounding:
            logger.info("buzzer silenced (%s)", why)
        return was_sounding

    @property
    def sounding(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def close(self) -> None:
        self.silence("stop")

    def _start(self, name: str, duration_s: float, cycle: list[tuple[float, float]]) -> None:
        self.silence("replaced")
        with self._lock:
            self._stop = threading.Event()
            self.silenced_by = None
            self.started_at = time.monotonic()
            self._thread = threading.Thread(
                target=self._play, args=(self._stop, duration_s, cycle), name=f"buzzer-{name}", daemon=True
            )
            self._thread.start()

    def _play(self, stop: threading.Event, duration_s: float, cycle: list[tuple[float, float]]) -> None:
        deadline = time.monotonic() + duration_s
        try:
            for tone, on_s in itertools.cycle(cycle):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.is_set():
                    break
                self._sound(tone or None)
                if stop.wait(min(on_s, remaining)):
                    break
                self._quiet()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.wait(min(self.config.alarm_off_s, remaining)):
                    break
            if not stop.is_set():
                self.silenced_by = "timeout"
                logger.info("buzzer: pattern over after %.1f s", duration_s)
        except Exception as exc:  # a closed device (service stopping) must not leave a noise behind
            logger.debug("buzzer pattern ended: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                self._quiet()
