"""The button: how long it was held decides the command it sends.

=================================== =================== =============================================
held for                            command             effect
=================================== =================== =============================================
less than ``long_press_s`` (3 s)    ``acknowledge``     silence the buzzer, cancel the countdown
``long_press_s`` .. very long       ``test_alarm``      sound the test alarm (relay untouched); while an
                                                        alert is active: "false alarm" for it (the
                                                        camera's learner learns the alert's frames are
                                                        normal, and the alert is acknowledged)
``very_long_press_s`` (10 s) and on ``recalibrate``     learn every camera's normal look again
=================================== =================== =============================================

The command is sent on release (so a long press is never mistaken for a short one); a chirp when
``long_press_s`` is reached and again at ``very_long_press_s`` tells the person holding it where
they are. Commands go through ``context.commands`` like MQTT's, so the analysis loop handles them
on its own thread; ``on_command`` of the board sink silences the buzzer at once for a short press.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from appliance.config.hardware import ButtonConfig
from appliance.service.commands import Command, CommandKind, CommandQueue

logger = logging.getLogger(__name__)


def classify(held_s: float, config: ButtonConfig) -> CommandKind:
    """The command for a press that lasted ``held_s`` seconds."""
    if held_s >= config.very_long_press_s:
        return CommandKind.RECALIBRATE
    if held_s >= config.long_press_s:
        return CommandKind.TEST_ALARM
    return CommandKind.ACKNOWLEDGE


class ButtonCommands:
    """Attaches to a gpiozero ``Button`` and turns presses into commands.

    ``clock`` (seconds, monotonic) is injectable so tests can hold the button for "ten seconds"
    without waiting; ``feedback`` is called with the stage reached while the button is still held
    (``"long"``, ``"very_long"``), e.g. to chirp; ``on_sent`` with each command sent (the board
    silences its buzzer on a short press without waiting for the loop).
    """

    def __init__(
        self,
        button: Any,
        config: ButtonConfig,
        commands: CommandQueue,
        feedback: Callable[[str], None] | None = None,
        on_sent: Callable[[CommandKind], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.button = button
        self.config = config
        self.commands = commands
        self.feedback = feedback
        self.on_sent = on_sent
        self.clock = clock
        self._pressed_at: float | None = None
        self._lock = threading.Lock()
        self._very_long_timer: threading.Timer | None = None
        self.sent: list[CommandKind] = []
        button.when_pressed = self._pressed
        button.when_released = self._released
        button.when_held = self._held

    def _pressed(self) -> None:
        with self._lock:
            self._pressed_at = self.clock()

    def _held(self) -> None:
        """gpiozero calls this after ``hold_time`` (= ``long_press_s``) of holding."""
        self._notify("long")
        timer = threading.Timer(self.config.very_long_press_s - self.config.long_press_s, self._very_long)
        timer.daemon = True
        with self._lock:
            self._very_long_timer = timer
        timer.start()

    def _very_long(self) -> None:
        if not self.button.closed and self.button.is_pressed:
            self._notify("very_long")

    def _notify(self, stage: str) -> None:
        if self.feedback is not None:
            try:
                self.feedback(stage)
            except Exception as exc:
                logger.debug("button feedback failed: %s", exc)

    def _released(self) -> None:
        with self._lock:
            pressed_at, self._pressed_at = self._pressed_at, None
            timer, self._very_long_timer = self._very_long_timer, None
        if timer is not None:
            timer.cancel()
        if pressed_at is None:
            return
        held = max(0.0, self.clock() - pressed_at)
        kind = classify(held, self.config)
        logger.info("button held %.2f s: %s", held, kind.value)
        self.sent.append(kind)
        self.commands.submit(Command(kind, origin="button"))
        if self.on_sent is not None:
            self.on_sent(kind)

    def close(self) -> None:
        with self._lock:
            timer, self._very_long_timer = self._very_long_timer, None
        if timer is not None:
            timer.cancel()
        if not self.button.closed:
            self.button.when_pressed = self.button.when_released = self.button.when_held = None
