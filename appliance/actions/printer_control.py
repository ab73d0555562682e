"""Pausing (or cancelling) the print after a confirmed failure, and watching only while it prints.

**Countdown.** On an alert from the printer's camera (``printer.camera``; unset: any camera) the
configured ``printer.action`` (``pause``, ``cancel``; ``none`` does nothing) runs after
``alarm.countdown_s`` seconds, PrintGuard-style, unless an ``acknowledge`` command (MQTT, Home
Assistant button, GPIO button, API) for that camera arrives first. Reminders of the same failure
start no second countdown. A ``pause_print`` (``cancel_print``) command pauses (cancels) at once.
A failed request is retried
``printer.retries`` times, ``printer.retry_backoff_s`` doubling; a 4xx (wrong key, no job) is not.
Every step is published on the event hub (``printer_countdown``, ``printer_countdown_cancelled``,
``printer_action`` with ``outcome`` done/failed/refused), which the MQTT sink sends to ``P/event``,
and logged.

**Print-state awareness.** Every ``printer.poll_interval_s`` seconds the printer's state is read and
published (``printer_state``: state, job progress in percent, file). With
``watch_only_while_printing`` a printer without an active job (printing or paused) makes this sink
submit a ``pause`` command for its camera, so an idle printer raises no alarm, and ``resume`` once a
job starts; a printer that cannot be reached changes nothing.

All network work runs on this sink's two threads; the analysis loop only records deadlines.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from appliance.actions.dispatcher import EventHub, event_hub
from appliance.actions.printers import PrinterClient, PrinterStatus, build_printer, job_end
from appliance.decision import Alert, Transition
from appliance.errors import PrinterError, PrinterRefusedError
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.pipeline import FrameResult

if TYPE_CHECKING:
    from appliance.config.integrations import MoonrakerConfig, OctoPrintConfig
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)
NOW_ACTIONS = (CommandKind.PAUSE_PRINT, CommandKind.CANCEL_PRINT)  # commands acted on at once


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    if config.printer is None:
        return []
    client = build_printer(config.printer)
    control = PrinterControl(
        config.printer, config.alarm.countdown_s, client, context.commands, event_hub(context)
    )
    control.read_temperatures = config.telemetry.enabled and config.telemetry.from_printer
    return [control]


class PrinterControl:
    def __init__(
        self,
        config: OctoPrintConfig | MoonrakerConfig,
        countdown_s: float,
        client: PrinterClient,
        commands: CommandQueue,
        hub: EventHub,
    ):
        self.config = config
        self.countdown_s = countdown_s
        self.client = client
        self.commands = commands
        self.hub = hub
        self._cond = threading.Condition()
        self._countdowns: dict[str, tuple[float, str, str]] = {}  # camera -> (deadline, alert id, action)
        self._now_actions: list[tuple[str, str, str]] = []  # (camera, action, reason) to run at once
        self._counted: set[str] = set()  # alert ids that already had a countdown
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._paused_monitoring = False
        self._last_active: bool | None = None
        self._job: PrinterStatus | None = None  # the last poll's answer
        self.actions_done: list[str] = []  # for tests and the log: "pause", "cancel"
        self.read_temperatures = False  # set by create_sinks when telemetry.from_printer asks for them

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        logger.info(
            "printer %s at %s: %s after %.0f s countdown%s", self.client.name, self.config.url,
            self.config.action, self.countdown_s,
            ", watching only while printing" if self.config.watch_only_while_printing else "",
        )  # fmt: skip
        targets = [self._act_loop] + ([self._poll_loop] if self.config.poll_interval_s > 0 else [])
        for target in targets:
            thread = threading.Thread(target=target, name=f"printer-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(0.5)

    def _linked(self, camera: str | None) -> bool:
        return camera is None or self.config.camera in (None, camera)

    # -- sink calls (analysis loop) ----------------------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        pass

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        pass

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        if self.config.action == "none" or not self._linked(camera) or alert.id in self._counted:
            return
        self._counted.add(alert.id)
        with self._cond:
            self._countdowns[camera] = (time.monotonic() + self.countdown_s, alert.id, self.config.action)
            self._cond.notify_all()
        logger.warning("printer: %s in %.0f s unless acknowledged (alert %s, camera %s)",
                       self.config.action, self.countdown_s, alert.id, camera)  # fmt: skip
        event = {"camera": camera, "alert": alert.id, "action": self.config.action}
        self.hub.emit("printer_countdown", {**event, "countdown_s": self.countdown_s})

    def on_command(self, command: Command) -> None:
        if command.kind == CommandKind.ACKNOWLEDGE:
            with self._cond:
                cancelled = [(c, v) for c, v in self._countdowns.items() if command.camera in (None, c)]
                for camera, _ in cancelled:
                    del self._countdowns[camera]
            for camera, (_, alert_id, action) in cancelled:
                logger.info("printer: %s countdown cancelled by acknowledge (alert %s)", action, alert_id)
                self.hub.emit(
                    "printer_countdown_cancelled", {"camera": camera, "alert": alert_id, "action": action}
                )
        elif command.kind == CommandKind.SETTINGS:
            self.apply_settings(command.value or {})
        elif command.kind in NOW_ACTIONS and self._linked(command.camera):
            action = "pause" if command.kind == CommandKind.PAUSE_PRINT else "cancel"
            with self._cond:
                self._now_actions.append((command.camera or "", action, f"command from {command.origin}"))
                self._cond.notify_all()

    def apply_settings(self, value: dict[str, Any]) -> None:
        """The console's settings (:mod:`appliance.config.settings_file`), live: the next countdown's
        length, the action, watching only while printing (re-checked at the next poll)."""
        if "countdown_s" in value:
            self.countdown_s = float(value["countdown_s"])
        if "action" in value:
            self.config.action = value["action"]
        if "watch_only_while_printing" in value:
            self.config.watch_only_while_printing = bool(value["watch_only_while_printing"])
            self._last_active = None  # the next poll decides again
            if not self.config.watch_only_while_printing and self._paused_monitoring:
                self._paused_monitoring = False
                self.commands.submit(Command(CommandKind.RESUME, camera=self.config.camera, origin="printer"))
        only = ", watching only while printing" if self.config.watch_only_while_printing else ""
        logger.info("printer: settings now %s after %.0f s%s", self.config.action, self.countdown_s, only)

    # -- the action thread -------------------------------------------------------------------
    def _next_job(self) -> tuple[str, str, str] | None:
        """Wait for a due countdown or an immediate action; None when stopping."""
        with self._cond:
            while not self._stop.is_set():
                if self._now_actions:
                    return self._now_actions.pop(0)
                now = time.monotonic()
                due = [(c, v) for c, v in self._countdowns.items() if v[0] <= now]
                if due:
                    camera, (_, alert_id, action) = due[0]
                    del self._countdowns[camera]
                    return (
                        camera,
                        action,
                        f"alert {alert_id}, not acknowledged within {self.countdown_s:.0f} s",
                    )
                deadlines = [v[0] for v in self._countdowns.values()]
                self._cond.wait(min(deadlines) - now if deadlines else None)
        return None

    def _act_loop(self) -> None:
        while (job := self._next_job()) is not None:
            self.perform(*job)

    def perform(self, camera: str, action: str, reason: str) -> dict[str, Any]:
        """Run ``action`` with retries; publish and return the outcome."""
        call = self.client.pause if action == "pause" else self.client.cancel
        outcome: dict[str, Any] = {"camera": camera or None, "action": action, "reason": reason}
        attempts, wait = 0, self.config.retry_backoff_s
        while True:
            attempts += 1
            try:
                call()
                outcome.update(outcome="done", attempts=attempts)
                self.actions_done.append(action)
                logger.warning(
                    "printer: %s sent to %s (%s, attempt %d)", action, self.client.name, reason, attempts
                )
                break
            except PrinterRefusedError as exc:
                outcome.update(outcome="refused", attempts=attempts, error=str(exc))
                logger.error("printer: %s refused: %s", action, exc)
                break
            except PrinterError as exc:
                if attempts > self.config.retries or self._stop.is_set():
                    outcome.update(outcome="failed", attempts=attempts, error=str(exc))
                    logger.error("printer: %s failed after %d attempts: %s", action, attempts, exc)
                    break
                logger.warning(
                    "printer: %s attempt %d failed: %s; retry in %.1f s", action, attempts, exc, wait
                )
                self._stop.wait(wait)
                wait *= 2
        self.hub.emit("printer_action", outcome)
        return outcome

    # -- the poll thread ---------------------------------------------------------------------
    def _poll_loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                status = self.client.status()
            except PrinterError as exc:
                if not failing:
                    logger.warning("printer: cannot read its state: %s", exc)
                failing = True
                self.hub.emit("printer_state", {"camera": self.config.camera, "state": "unreachable"})
            else:
                if failing:
                    logger.info("printer: reachable again (%s)", status.state)
                failing = False
                state = {"state": status.state, "progress": status.progress, "file": status.file,
                         "active": status.active}  # fmt: skip
                self.hub.emit("printer_state", {"camera": self.config.camera, **state})
                self._read_temperatures()
                self._job_end(status)
                self._follow(status.active)
            self._stop.wait(self.config.poll_interval_s)

    def _read_temperatures(self) -> None:
        """With ``telemetry.from_printer``: the heaters' figures as a ``printer_temperatures`` event
        (read by :mod:`appliance.telemetry`); a server that cannot tell changes nothing."""
        read = getattr(self.client, "temperatures", None)
        if not self.read_temperatures or read is None:
            return
        try:
            figures = read()
        except PrinterError as exc:
            logger.debug("printer: no temperatures: %s", exc)
            return
        if figures:
            self.hub.emit("printer_temperatures", {"camera": self.config.camera, **figures})

    def _job_end(self, status: PrinterStatus) -> None:
        """A job that was active and is not any more ended; how (:func:`appliance.actions.printers.job_end`)
        from the printer's own end state and final completion. The camera's learner takes it as an
        answer only when the end is certain
        (:meth:`appliance.service.command_handling.CommandHandler._print_finished`)."""
        previous, self._job = self._job, status
        if previous is None or not previous.active or status.active:
            return
        outcome, certain = job_end(previous.state, status.state, previous.progress, status.progress)
        completed = outcome == "completed"
        logger.info(
            "printer: job ended (%s, %s; last %s at %s %%, now %s at %s %%)", outcome,
            "certain" if certain else "uncertain: nothing learned", previous.state, previous.progress,
            status.state, status.progress,
        )  # fmt: skip
        value = {"completed": completed, "outcome": outcome, "certain": certain}
        self.hub.emit("printer_job_end", {"camera": self.config.camera, **value})
        self.commands.submit(
            Command(CommandKind.PRINT_FINISHED, camera=self.config.camera, value=value, origin="printer")
        )

    def _follow(self, active: bool) -> None:
        """Pause monitoring when no job is active, resume when one starts (only what we paused)."""
        if not self.config.watch_only_while_printing or active == self._last_active:
            return
        self._last_active = active
        camera = self.config.camera
        if not active:
            logger.info("printer: no job; monitoring paused until a print starts")
            self._paused_monitoring = True
            self.commands.submit(Command(CommandKind.PAUSE, camera=camera, origin="printer"))
        elif self._paused_monitoring:
            logger.info("printer: a job started; monitoring resumed")
            self._paused_monitoring = False
            self.commands.submit(Command(CommandKind.RESUME, camera=camera, origin="printer"))
