"""An answer that names a frame or an alert the camera does not have is rejected out loud.

A user's answer (MQTT ``label``, ``false_alarm``, ``real_failure``, the API's commands, the button) names
a recent frame (``<run>-<sequence>``, kept for the last few hundred analysed frames) or an alert (or, with
neither, the newest alert). Issue 33 found that one naming something the camera no longer keeps, or never
had, only left a log line, so the person who sent it never learned it was ignored.

:func:`unknown_target` says why such an answer cannot be applied (None when it can); the service loop
(:meth:`appliance.service.runner.Service._answer`) then skips it and calls :func:`reject_answer`, which
emits a ``command_rejected`` device event - the type MQTT already uses for malformed commands, on
``P/event`` and the console's event stream - with the camera, the command, the frame or alert named and
the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.actions.dispatcher import EventHub
from appliance.service.commands import Command

logger = logging.getLogger(__name__)


def unknown_target(answers: Any, alert: object, frame: object) -> str | None:
    """Why an answer naming ``frame`` (or ``alert``; both None: the newest alert) cannot be applied to the
    camera whose :class:`~appliance.service.camera_answers.CameraAnswers` is ``answers``; None if it can."""
    if frame is not None:
        if frame not in answers.recent:
            return f"frame {str(frame)[:48]!r} is not one of the camera's recent frames (or no longer kept)"
        return None
    if alert is not None:
        if alert not in answers.alert_frames:
            return f"alert {str(alert)[:48]!r} is not one of the camera's alerts (or no longer kept)"
        return None
    if not answers.alert_frames:
        return "no alert to answer yet"
    return None


def reject_answer(hub: EventHub, camera: str, command: Command, reason: str) -> None:
    """Log the rejected answer and publish it as a ``command_rejected`` event."""
    value = command.value if isinstance(command.value, dict) else {}
    logger.warning("camera %s: answer from %s rejected: %s", camera, command.origin, reason)
    hub.emit("command_rejected", {
        "camera": camera, "command": command.kind.value, "label": value.get("label"),
        "alert": value.get("alert"), "frame": value.get("frame"), "reason": reason, "origin": command.origin,
    })  # fmt: skip
