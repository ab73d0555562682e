"""The API's action sink: snapshots of what the pipelines publish, for the HTTP threads to read.

Called on the analysis thread, every method only stores references, bumps counters and hands events to
the broadcaster (:mod:`appliance.api.events`); JPEG encoding, file serving and every network write
happen on the server's thread (:mod:`appliance.api.server`). Alerts go to the persisted history
(:mod:`appliance.api.alerts_store`); each camera's open alert, with what will happen to the print and
what did, is kept by :mod:`appliance.api.alert_panel` until it is answered or the print ends. Answers
(``answer`` and ``answer_withdrawn`` events of the service) are written into the alert's history entry
with their answer ids.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.actions.dispatcher import event_hub
from appliance.actions.evidence import draw_evidence, encode_jpeg
from appliance.api.alert_panel import ActiveAlerts
from appliance.api.alerts_store import AlertsStore
from appliance.api.auth import TokenAuth, resolve_token
from appliance.api.events import EventBroadcaster
from appliance.api.metrics import ApiMetrics
from appliance.api.recent_frames import RecentFrames
from appliance.decision import Alert, Transition
from appliance.detector import Detection
from appliance.service.commands import Command, CommandKind
from appliance.service.pipeline import FrameResult
from appliance.sources import Frame

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)

CAMERA_EVENT_INTERVAL_S = 1.0


@dataclass
class CameraView:
    """The newest analysed frame of one camera and what the detector said of it."""

    frame: Frame | None = None
    detection: Detection | None = None
    result: dict[str, Any] = field(default_factory=dict)
    last_event_at: float = 0.0
    jpeg: dict[bool, tuple[int, bytes]] = field(default_factory=dict)  # overlay -> (sequence, bytes)


class ApiSink:
    def __init__(self, config: LayerwatchConfig, context: ServiceContext):
        self.config = config
        self.api = config.api
        self.context = context
        self.commands = context.commands
        self.cameras = list(context.cameras)
        self.views = {name: CameraView() for name in self.cameras}
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self.alerts = AlertsStore(context.state_dir, config.api.alerts_kept)
        self.events = EventBroadcaster()
        self.metrics = ApiMetrics(context.telemetry, lambda: self.events.clients)
        self.auth = TokenAuth(resolve_token(config.api, context.state_dir), config.api.protect_reads)
        self.printer: dict[str, Any] = {}
        relay = config.hardware.relay
        self.active = ActiveAlerts(relay.action if relay is not None else None, config.alarm.countdown_s)
        self._telemetry: dict[str, dict[str, Any]] = {}  # alert id -> the telemetry anomaly behind it
        self.frames = RecentFrames(self.cameras)  # the console's strip of answerable recent frames
        self.skipping_print: set[str] = set()  # cameras told not to watch the current print
        self.server: Any = None
        event_hub(context).listen(self._on_device_event)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        from appliance.api.server import ApiServer

        self.server = ApiServer(self, self.api.host, self.api.port, after=self.context.ready)
        self.server.start()

    def stop(self) -> None:
        self.events.closed = True
        if self.server is not None:
            self.server.stop()

    # -- from the analysis loop --------------------------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        view = self.views.setdefault(result.camera, CameraView())
        with self._lock:
            view.frame, view.detection, view.result = result.frame, result.detection, result.to_json()
        self.metrics.observe(result)
        self.frames.add(result)
        now = time.monotonic()
        if now - view.last_event_at >= CAMERA_EVENT_INTERVAL_S:
            view.last_event_at = now
            self.events.publish("camera", view.result)

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        event = {"camera": camera, "previous": transition.previous.value, "state": transition.state.value}
        self.events.publish("state", {**event, **{k: v for k, v in detail.items() if k != "error"}})

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        self.metrics.alerts.labels(camera).inc()
        cloud = None if result.cloud is None else bool(result.cloud.get("failure"))
        telemetry = self._telemetry.pop(alert.id, None) if alert.cause else None
        score = None if alert.cause else round(alert.score, 4)  # a telemetry alert has no camera score
        fields = {"id": alert.id, "score": score, "votes": alert.votes, "window": alert.window,
                  "cloud_verdict": cloud, "cause": alert.cause, "telemetry": telemetry,
                  "reason": result.reason}  # fmt: skip
        entry = self.alerts.record(camera, fields, image=alert.cause is None)
        if not alert.repeat or self.active.alert_of(camera) != alert.id:
            replaced = self.active.open(camera, alert.id, score, alert.cause, telemetry, result.reason)
            if replaced is not None:
                self._closed(replaced, "replaced")
        self.events.publish("alert", {**entry, "countdown": self.countdown(camera)})

    def on_command(self, command: Command) -> None:
        cameras = [c for c in self.cameras if command.camera in (None, c)]
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        if command.kind == CommandKind.ACKNOWLEDGE:
            reason = "print_ended_unanswered" if command.origin == "print_end" else "acknowledged"
            for camera in cameras:
                for alert_id, answered in self.active.close(camera):
                    if reason == "print_ended_unanswered" and answered:
                        reason = "print_ended"
                    self._closed(alert_id, reason, acknowledged=now if reason == "acknowledged" else None)
        elif command.kind == CommandKind.SKIP_PRINT:
            self.skipping_print.update(cameras)
        elif command.kind in (CommandKind.RESUME, CommandKind.PRINT_FINISHED):
            self.skipping_print.difference_update(cameras)
        elif command.kind == CommandKind.SETTINGS and "countdown_s" in (command.value or {}):
            self.config.alarm.countdown_s = self.active.countdown_s = float(command.value["countdown_s"])
        elif command.kind in (CommandKind.RECALIBRATE, CommandKind.IGNORE_ZONES, CommandKind.ADD_EXAMPLES):
            for camera in cameras:
                state = self.context.state_of(camera)
                event = {"camera": camera, "command": command.kind.value}
                self.events.publish("calibration", {**event, **{k: state.get(k) for k in CALIBRATION_KEYS}})

    def _closed(self, alert_id: str, reason: str, acknowledged: str | None = None) -> None:
        changes: dict[str, Any] = {"closed": reason}
        if acknowledged is not None:
            changes["acknowledged"] = acknowledged
        for entry in self.alerts.update(None, alert_id, **changes):
            self.events.publish("alert_update", entry)

    def _answered(self, payload: dict[str, Any]) -> None:
        """The service's ``answer`` event: the alert's entry gets the answer and its ids; an answer
        naming a frame changes no alert."""
        camera, alert_id = str(payload.get("camera")), payload.get("alert")
        if payload.get("frame") is not None:
            if self.frames.answered(payload):
                self.events.publish("frames", {"camera": camera, "frame": payload.get("frame")})
            return
        if not alert_id or not payload.get("learned"):
            return
        answer = "false_alarm" if payload.get("label") == "ok" else "real_failure"
        ids, learner = list(payload.get("answer_ids") or []), payload.get("learner")
        self.active.answered(camera, alert_id, str(payload.get("label")), ids, learner)
        if answer == "false_alarm" and self.active.alert_of(camera) == alert_id:
            self.active.close(camera)
            self._closed(alert_id, "false_alarm")
        answered = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        changes = {"answer": answer, "answer_ids": ids, "learner": learner, "answered": answered}
        for entry in self.alerts.update(camera, alert_id, **changes):
            self.events.publish("alert_update", entry)

    def _withdrawn(self, payload: dict[str, Any]) -> None:
        camera, key = str(payload.get("camera")), str(payload.get("key"))
        if self.frames.withdrawn(payload):
            self.events.publish("frames", {"camera": camera, "frame": key})
        self.active.withdrawn(camera, key, payload.get("learner"))
        for entry in self.alerts.withdrawn(camera, key, payload.get("learner")):
            self.events.publish("alert_update", entry)

    def _on_device_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "printer_countdown":
            self.active.countdown_started(payload)
        elif kind == "printer_countdown_cancelled":
            self.active.countdown_cancelled(payload)
        elif kind == "printer_action":
            self.active.printer_acted(payload)
        elif kind == "telemetry_alert":
            self._telemetry[str(payload.get("alert"))] = {k: v for k, v in payload.items() if k != "alert"}
            return
        elif kind == "answer":
            self._answered(payload)
        elif kind == "answer_withdrawn":
            self._withdrawn(payload)
        elif kind == "printer_job_end":
            for alert_id, answered in self.active.close(payload.get("camera")):
                self._closed(alert_id, "print_ended" if answered else "print_ended_unanswered")
        if kind == "printer_state":
            with self._lock:
                self.printer = {"camera": payload.get("camera"), "state": payload.get("state"),
                                "progress": payload.get("progress"), "file": payload.get("file")}  # fmt: skip
            self.events.publish("printer", dict(self.printer))
        else:
            self.events.publish("device", {"type": kind, **payload})

    # -- for the HTTP threads ----------------------------------------------------------------
    def countdown(self, camera: str) -> dict[str, Any] | None:
        """The camera's open alert (:meth:`ActiveAlerts.view`), None when it has none."""
        return self.active.view(camera)

    def camera_status(self, camera: str) -> dict[str, Any]:
        with self._lock:
            result = dict(self.views[camera].result)
            printer = dict(self.printer) if self.printer.get("camera") in (None, camera) else {}
        status: dict[str, Any] = {"name": camera, **result, **self.context.state_of(camera)}
        status["countdown"] = self.countdown(camera)
        status["skipping_print"] = camera in self.skipping_print
        status["printer"] = printer or None
        return status

    def sequence(self, camera: str) -> int | None:
        frame = self.views[camera].frame
        return None if frame is None else frame.sequence

    def jpeg(self, camera: str, overlay: bool = False) -> bytes | None:
        """The newest frame as JPEG (with the evidence heatmap when ``overlay``), encoded once per frame."""
        view = self.views[camera]
        with self._lock:
            frame, detection = view.frame, view.detection
        if frame is None or detection is None:
            return None
        with self._encode_lock:
            cached = view.jpeg.get(overlay)
            if cached is not None and cached[0] == frame.sequence:
                return cached[1]
            image = frame.evidence_image
            if overlay:
                caption = f"{camera}: score {detection.score:.2f} {detection.verdict.value}"
                image = draw_evidence(image, detection, caption)
            data = encode_jpeg(image)
            view.jpeg[overlay] = (frame.sequence, data)
            return data


CALIBRATION_KEYS = ("calibrated", "calibration", "learner", "ignore_zones", "state")
