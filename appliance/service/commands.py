"""Commands from outside the analysis loop (MQTT ``.../set``, the GPIO button, the API).

Producers on any thread call :meth:`CommandQueue.submit`; the service drains the queue on its own
loop, so engines and sources are only ever touched by the analysis thread. Every command is also
handed to each action sink's ``on_command`` (buzzer silenced on acknowledge, countdown cancelled,
relay switched, test alarm sounded).

A flood of commands must not starve the analysis (issue 33 item 5: 5,000 MQTT commands in 10 s on a
contended CPU took it from 10 to 0.1 frames/s). So commands get a bounded share of each turn of the
loop and a bounded queue: :meth:`CommandQueue.stream` (what the loop reads) hands out at most
``PER_DRAIN`` commands and stops once ``TURN_BUDGET_S`` of the turn went on them (an acknowledge that
rewrites the alert history costs milliseconds on a busy SD card); the rest wait for the next turn, a frame
or a quarter second later. :meth:`CommandQueue.submit` drops
a command from outside (``origin`` ``mqtt`` or ``api``) once ``MAX_QUEUED`` are waiting, counting the
drops (``dropped``) and logging ``commands: N dropped so far`` at the first and every 100th. Commands
the appliance makes itself (the button, the printer link, the loop) are never dropped.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

MAX_QUEUED = 500  # commands waiting before those from outside are dropped (seconds of work at most)
PER_DRAIN = 100  # commands handled per turn of the analysis loop
TURN_BUDGET_S = 0.025  # seconds of one turn of the loop that commands may take (turns: 4-10+ a second)
FLOOD_ORIGINS = frozenset({"mqtt", "api"})  # where a flood can come from: only these are ever dropped


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
    SETTINGS = "settings"  # value: the changed settings of appliance.config.settings_file, applied live
    SKIP_PRINT = "skip_print"  # do not watch the current print: monitoring paused until the print ends


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    camera: str | None = None  # None: every camera
    value: Any = None
    origin: str = "unknown"  # "mqtt", "button", "api", ... for the log
    extra: dict[str, Any] = field(default_factory=dict)


class CommandQueue:
    """Thread-safe, bounded FIFO of commands for the analysis loop (see the module's docstring)."""

    def __init__(self, max_queued: int = MAX_QUEUED, per_drain: int = PER_DRAIN) -> None:
        self.max_queued = max_queued
        self.per_drain = per_drain
        self.dropped = 0  # commands from outside dropped because the queue was full
        self._reported = 0  # the drops last logged
        self._queue: deque[Command] = deque()
        self._lock = threading.Lock()

    def submit(self, command: Command) -> bool:
        """Queue ``command``; False (and counted) when it was dropped because the queue is full."""
        with self._lock:
            if len(self._queue) < self.max_queued or command.origin not in FLOOD_ORIGINS:
                self._queue.append(command)
                return True
            self.dropped += 1
            dropped = self.dropped
        if dropped == 1 or dropped % 100 == 0:
            self._report(dropped)
        return False

    def _report(self, dropped: int) -> None:
        self._reported = dropped
        logger.warning("commands: %d dropped so far (at most %d wait: a flood of commands)", dropped,
                       self.max_queued)  # fmt: skip

    def drain(self, limit: int | None = None) -> list[Command]:
        """The oldest waiting commands, at most ``limit`` (default ``per_drain``)."""
        count = self.per_drain if limit is None else limit
        with self._lock:
            commands = [self._queue.popleft() for _ in range(min(count, len(self._queue)))]
            settled = self.dropped != self._reported and not self._queue
        if settled:  # the flood is over: the final count
            self._report(self.dropped)
        return commands

    def stream(self, budget_s: float = TURN_BUDGET_S) -> Iterator[Command]:
        """The oldest waiting commands, one at a time, while fewer than ``per_drain`` were handed out and
        less than ``budget_s`` passed since the first (the caller handles each before asking for the
        next, so its work counts); what is left waits for the next call."""
        started = time.monotonic()
        for _ in range(self.per_drain):
            if time.monotonic() - started >= budget_s:
                return
            with self._lock:
                if not self._queue:
                    break
                command = self._queue.popleft()
            yield command
        with self._lock:
            settled = self.dropped != self._reported and not self._queue
        if settled:
            self._report(self.dropped)

    def __len__(self) -> int:
        return len(self._queue)
