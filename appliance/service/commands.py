"""Commands from outside the analysis loop (MQTT ``.../set``, the GPIO button, the API).

Producers on any thread call :meth:`CommandQueue.submit`; the service drains the queue on its own
loop, so engines and sources are only ever touched by the analysis thread. Every command is also
handed to each action sink's ``on_command`` (buzzer silenced on acknowledge, countdown cancelled,
relay switched, test alarm sounded).
"""

from __future__ import annotations

import enum
import queue
from dataclasses import dataclass, field
from typing import Any


class CommandKind(enum.StrEnum):
    ACKNOWLEDGE = "acknowledge"  # a person saw the alert: silence it, cancel any countdown
    PAUSE = "pause"  # stop monitoring (state paused)
    RESUME = "resume"  # monitoring on again
    TEST_ALARM = "test_alarm"  # exercise every alarm output once
    RELAY = "relay"  # value: True (on) / False (off)
    RECALIBRATE = "recalibrate"  # capture calibration frames now and use them; value: {"frames": N} or None
    PAUSE_PRINT = "pause_print"  # ask the linked printer to pause
    ANSWER = "answer"  # value: {"label": ok|failure, "alert": id | None, "frame": id | None}
    WITHDRAW = "withdraw"  # value: an answer id or frame id to take back
    PRINT_FINISHED = "print_finished"  # value: {"completed": bool}: the linked printer's job ended
    CANCEL_PRINT = "cancel_print"  # ask the linked printer to cancel its job
    IGNORE_ZONES = "ignore_zones"  # value: tuple of appliance.detector.ignore_zones.Zone (empty: none)
    ADD_EXAMPLES = "add_examples"  # value: {"label": ok|failure, "images": [BGR arrays]}: uploaded examples


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    camera: str | None = None  # None: every camera
    value: Any = None
    origin: str = "unknown"  # "mqtt", "button", "api", ... for the log
    extra: dict[str, Any] = field(default_factory=dict)


class CommandQueue:
    """Thread-safe FIFO of commands for the analysis loop."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def submit(self, command: Command) -> None:
        self._queue.put(command)

    def drain(self) -> list[Command]:
        commands = []
        while True:
            try:
                commands.append(self._queue.get_nowait())
            except queue.Empty:
                return commands
