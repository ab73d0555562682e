"""The API's action sink: snapshots of what the pipelines publish, for the HTTP threads to read.

Called on the analysis thread, every method only stores references, bumps counters and hands events to
the broadcaster (:mod:`appliance.api.events`); JPEG encoding, file serving and every network write
happen on the server's thread (:mod:`appliance.api.server`). Alerts go to the persisted history
(:mod:`appliance.api.alerts_store`) with their countdown (``alarm.countdown_s``; an acknowledge ends it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.actions.dispatcher import event_hub
from appliance.actions.evidence import draw_evidence, encode_jpeg
from appliance.api.alerts_store import AlertsStore
from appliance.api.auth import TokenAuth, resolve_token
from appliance.api.events import EventBroadcaster
from appliance.api.metrics import ApiMetrics
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
        self.countdowns: dict[str, dict[str, Any]] = {}  # camera -> {alert, deadline (epoch s), countdown_s}
        self.server: Any = None
        event_hub(context).listen(self._on_device_event)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        from appliance.api.server import ApiServer

        self.server = ApiServer(self, self.api.host, self.api.port)
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
        fields = {"id": alert.id, "score": round(alert.score, 4), "votes": alert.votes,
                  "window": alert.window, "cloud_verdict": cloud}  # fmt: skip
        entry = self.alerts.record(camera, fields)
        if not alert.repeat:
            countdown = self.config.alarm.countdown_s
            with self._lock:
                self.countdowns[camera] = {"alert": alert.id, "score": round(alert.score, 4),
                                           "countdown_s": countdown,
                                           "deadline": time.time() + countdown}  # fmt: skip
        self.events.publish("alert", {**entry, "countdown": self.countdown(camera)})

    def on_command(self, command: Command) -> None:
        cameras = [c for c in self.cameras if command.camera in (None, c)]
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        if command.kind == CommandKind.ACKNOWLEDGE:
            for camera in cameras:
                with self._lock:
                    had = self.countdowns.pop(camera, None)
                alert_id = had["alert"] if had else None
                for entry in self.alerts.update(camera, alert_id, acknowledged=now):
                    self.events.publish("alert_update", entry)
        elif command.kind == CommandKind.ANSWER and isinstance(command.value, dict):
            value = command.value
            if value.get("frame") is None:
                answer = "false_alarm" if value.get("label") == "ok" else "real_failure"
                for camera in cameras:
                    for entry in self.alerts.update(camera, value.get("alert"), answer=answer):
                        self.events.publish("alert_update", entry)
        elif command.kind in (CommandKind.RECALIBRATE, CommandKind.IGNORE_ZONES, CommandKind.ADD_EXAMPLES):
            for camera in cameras:
                state = self.context.state_of(camera)
                event = {"camera": camera, "command": command.kind.value}
                self.events.publish("calibration", {**event, **{k: state.get(k) for k in CALIBRATION_KEYS}})

    def on_tick(self, now: float) -> None:
        expired = time.time()
        with self._lock:
            for camera in [c for c, v in self.countdowns.items() if v["deadline"] < expired - 60]:
                del self.countdowns[camera]

    def _on_device_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "printer_state":
            with self._lock:
                self.printer = {"camera": payload.get("camera"), "state": payload.get("state"),
                                "progress": payload.get("progress"), "file": payload.get("file")}  # fmt: skip
            self.events.publish("printer", dict(self.printer))
        else:
            self.events.publish("device", {"type": kind, **payload})

    # -- for the HTTP threads ----------------------------------------------------------------
    def countdown(self, camera: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.countdowns.get(camera)
            if entry is None:
                return None
            return {**entry, "remaining_s": round(max(0.0, entry["deadline"] - time.time()), 1)}

    def camera_status(self, camera: str) -> dict[str, Any]:
        with self._lock:
            result = dict(self.views[camera].result)
            printer = dict(self.printer) if self.printer.get("camera") in (None, camera) else {}
        status: dict[str, Any] = {"name": camera, **result, **self.context.state_of(camera)}
        status["countdown"] = self.countdown(camera)
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
