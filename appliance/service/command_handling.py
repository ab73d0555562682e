"""The service's commands, applied on the analysis loop's thread between two frames.

Commands arrive from MQTT, the HTTP API, the GPIO button and the integrations through the
:class:`~appliance.service.commands.CommandQueue`; :class:`CommandHandler` applies each to the camera
pipelines it names (all when it names none), then passes it to every sink's ``on_command``.
Acknowledge, pause/resume, skip this print, recalibrate (queued on the calibration worker), ignore zones,
examples, answers (checked: an unknown frame or alert is rejected on ``P/event``), withdrawals,
sensitivity, and the end of a print (the camera learns from it only when the end is certain).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appliance.actions.dispatcher import event_hub
from appliance.service.answer_checks import reject_answer, unknown_target
from appliance.service.calibration_worker import CalibrationWorker
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.pipeline import CameraPipeline
from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)


class CommandHandler:
    """Applies queued commands to the pipelines (the list is the service's own, filled by its build)."""

    def __init__(
        self,
        pipelines: list[CameraPipeline],
        commands: CommandQueue,
        context: ServiceContext,
        calibration: CalibrationWorker,
        call_sinks: Callable[..., None],
    ):
        self.pipelines = pipelines
        self.commands = commands
        self.context = context
        self.calibration = calibration
        self.call_sinks = call_sinks
        #: cameras told not to watch the current print (skip_print): watching again when it ends
        self.skipping_print: set[str] = set()

    def _targets(self, command: Command) -> list[CameraPipeline]:
        return [p for p in self.pipelines if command.camera in (None, p.name)]

    def rewrite(self, command: Command) -> list[Command]:
        """A long press of the button while an alert is active means "false alarm" for the cameras with an
        active alert (outside an alert it stays the test alarm)."""
        if command.kind is not CommandKind.TEST_ALARM or command.origin != "button":
            return [command]
        active = [p.name for p in self.pipelines if p.engine.alert_active()]
        if not active:
            return [command]
        logger.info("button long press during an alert: false alarm for %s", ", ".join(active))
        value = {"label": "ok", "alert": None, "frame": None}
        return [Command(CommandKind.ANSWER, camera=name, value=value, origin="button") for name in active]

    def handle(self) -> None:
        """Apply the queued commands: a bounded share of the turn (count and time:
        :meth:`~appliance.service.commands.CommandQueue.stream`), the rest next turn (issue 33)."""
        for command in (c for raw in self.commands.stream() for c in self.rewrite(raw)):
            logger.info(
                "command %s (camera %s) from %s", command.kind.value, command.camera or "all", command.origin
            )
            now = time.monotonic()
            for pipeline in self._targets(command):
                if command.kind == CommandKind.ACKNOWLEDGE:
                    pipeline.emit(pipeline.engine.acknowledge(now), {"command": "acknowledge"})
                elif command.kind == CommandKind.PAUSE:
                    pipeline.emit(pipeline.engine.pause(), {"command": "pause"})
                elif command.kind == CommandKind.RESUME:
                    self.skipping_print.discard(pipeline.name)
                    pipeline.emit(pipeline.engine.resume(now), {"command": "resume"})
                elif command.kind == CommandKind.RECALIBRATE:
                    frames = command.value.get("frames") if isinstance(command.value, dict) else None
                    self.calibration.request(pipeline, frames)  # queued (or merged): the loop goes on
                elif command.kind == CommandKind.IGNORE_ZONES:
                    pipeline.set_ignore_zones(command.value or ())
                elif command.kind == CommandKind.ADD_EXAMPLES:
                    pipeline.add_examples(command.value["images"], command.value["label"])
                elif command.kind == CommandKind.ANSWER:
                    self._answer(pipeline, command)
                elif command.kind == CommandKind.SETTINGS and "sensitivity" in (command.value or {}):
                    pipeline.sensitivity = pipeline.config.sensitivity = float(command.value["sensitivity"])
                    logger.info("camera %s: sensitivity %+.2f (threshold %.3f)", pipeline.name,
                                pipeline.sensitivity, pipeline.threshold)  # fmt: skip
                elif command.kind == CommandKind.SKIP_PRINT:
                    self.skipping_print.add(pipeline.name)
                    logger.info("camera %s: not watching this print (until it ends)", pipeline.name)
                    pipeline.emit(pipeline.engine.pause(), {"command": "skip_print"})
                elif command.kind == CommandKind.PRINT_FINISHED:
                    self._print_finished(pipeline, command)
                elif command.kind == CommandKind.WITHDRAW:
                    removed = pipeline.withdraw(str(command.value))
                    logger.info("camera %s: %d answer(s) withdrawn", pipeline.name, removed)
                    event_hub(self.context).emit("answer_withdrawn", {
                        "camera": pipeline.name, "key": str(command.value), "removed": removed,
                        "learner": pipeline.answers.learner.counts(), "origin": command.origin,
                    })  # fmt: skip
            self.call_sinks("on_command", command)

    def _print_finished(self, pipeline: CameraPipeline, command: Command) -> None:
        """The linked printer's job ended. The camera learns from it only when the end is certain (the
        printer's own end state or final completion); an alert still open is closed as "print ended
        unanswered" and the next print starts clean (no failure state, no cooldown carried over)."""
        value = dict(command.value or {})
        completed, certain = bool(value.get("completed")), bool(value.get("certain", True))
        learned = pipeline.print_ended(completed) if certain else 0
        logger.info(
            "camera %s: print ended (%s%s); %d frame(s) learned from it", pipeline.name,
            "completed" if completed else "not completed", "" if certain else ", uncertain end", learned,
        )  # fmt: skip
        if pipeline.engine.alert_active():
            self.commands.submit(Command(CommandKind.ACKNOWLEDGE, pipeline.name, origin="print_end"))
        pipeline.emit(pipeline.engine.end_print(), {"command": "print_end"})
        if pipeline.name in self.skipping_print:  # the skipped print is over: watch the next one
            self.skipping_print.discard(pipeline.name)
            pipeline.emit(pipeline.engine.resume(time.monotonic()), {"command": "print_end"})

    def _answer(self, pipeline: CameraPipeline, command: Command) -> None:
        """An answer from the user; "false alarm" on an alert also acknowledges it (silence, no countdown).
        The answer ids go out on the ``answer`` device event (MQTT ``P/event``, the console)."""
        value = dict(command.value or {})
        label = str(value.get("label"))
        alert, frame = value.get("alert"), value.get("frame")
        reason = unknown_target(pipeline.answers, alert, frame)
        if reason is not None:  # a frame or alert the camera does not have: said on P/event (issue 33)
            reject_answer(event_hub(self.context), pipeline.name, command, reason)
            return
        learned = pipeline.answer(label, alert_id=alert, frame_id=frame)
        if frame is None and alert is None:
            alert = pipeline.answers.newest_alert()
        event_hub(self.context).emit("answer", {
            "camera": pipeline.name, "label": label, "alert": alert, "frame": frame, "learned": learned,
            "answer_ids": list(pipeline.answers.last_answer_ids) if learned else [],
            "learner": pipeline.answers.learner.counts(), "origin": command.origin,
        })  # fmt: skip
        if learned and label == "ok" and frame is None and pipeline.engine.alert_active():
            self.commands.submit(Command(CommandKind.ACKNOWLEDGE, pipeline.name, origin=command.origin))
