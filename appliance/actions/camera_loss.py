"""A camera that goes offline or freezes during a print raises its own alert (PrintGuard pauses the printer
then; an unwatched print is the risk Layerwatch exists for).

When a camera has been in ``camera_offline`` (no frame, or a frozen stream: ``camera_status`` says which)
for ``alarm.camera_lost_alert_s`` seconds while its linked printer has a job printing, every other sink
gets an alert whose ``cause`` says so: the buzzer and light, MQTT, Discord, Telegram, the console (with
the camera's last frame as its picture). The printer's countdown runs for it only with
``alarm.camera_lost_pauses_print`` (then the print is paused, or cancelled, ``alarm.countdown_s`` later
unless someone acknowledges). One alert per outage; the camera coming back is a ``camera_back`` event.
Without a linked printer nothing is known of a print, so nothing is raised here (the camera's state
and the status light still say ``camera_offline``). ``alarm.camera_lost_alert_s = 0`` turns it off.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.actions.dispatcher import EventHub, event_hub
from appliance.actions.evidence import encode_jpeg
from appliance.decision import Alert, CameraState, Transition
from appliance.detector import Detection, Verdict
from appliance.service.pipeline import FrameResult
from appliance.sources import Frame

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    printer = config.printer
    if config.alarm.camera_lost_alert_s <= 0 or printer is None or printer.poll_interval_s <= 0:
        return []
    return [CameraLossSink(config, context, event_hub(context))]


class CameraLossSink:
    def __init__(self, config: LayerwatchConfig, context: ServiceContext, hub: EventHub):
        self.after_s = config.alarm.camera_lost_alert_s
        self.pauses_print = config.alarm.camera_lost_pauses_print
        self.printer_camera = config.printer.camera if config.printer is not None else None
        self.context = context
        self.hub = hub
        self.lost_since: dict[str, float] = {}  # camera -> monotonic time it went offline
        self.alerted: dict[str, str] = {}  # camera -> alert id of this outage
        self.printing = False
        self.last: dict[str, FrameResult] = {}
        hub.listen(self._on_hub_event)

    def _on_hub_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "printer_state" and payload.get("state") != "unreachable":
            self.printing = str(payload.get("state") or "").startswith("printing")

    def _watched(self, camera: str) -> bool:
        return self.printer_camera in (None, camera)

    # -- sink calls (analysis loop) ------------------------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        self.last[result.camera] = result

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        if transition.state == CameraState.CAMERA_OFFLINE:
            self.lost_since.setdefault(camera, time.monotonic())
        elif transition.previous == CameraState.CAMERA_OFFLINE:
            self.lost_since.pop(camera, None)
            alert_id = self.alerted.pop(camera, None)
            if alert_id is not None:
                logger.info("camera %s is back (alert %s)", camera, alert_id)
                self.hub.emit("camera_back", {"camera": camera, "alert": alert_id})

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        pass

    def on_tick(self, now: float) -> None:
        for camera, since in list(self.lost_since.items()):
            if camera in self.alerted or not self.printing or not self._watched(camera):
                continue
            lost_s = time.monotonic() - since
            if lost_s >= self.after_s:
                self.raise_alert(camera, lost_s)

    def raise_alert(self, camera: str, lost_s: float) -> None:
        status = str(self.context.state_of(camera).get("camera_status") or "offline")
        how = "frozen" if status == "frozen" else "offline"
        cause = f"camera {camera} {how} for {lost_s:.0f} s during a print: the print is not watched"
        alert = Alert(uuid.uuid4().hex[:12], camera, 1.0, 0, 0, 0, 0, cause=cause)
        self.alerted[camera] = alert.id
        logger.warning("%s (alert %s)", cause, alert.id)
        result, jpeg = self._evidence(camera)
        from appliance.actions.printer_control import PrinterControl  # late: it imports the pipeline

        for sink in list(self.context.sinks):
            if sink is self or (isinstance(sink, PrinterControl) and not self.pauses_print):
                continue
            try:
                sink.on_alert(camera, alert, result, jpeg)
            except Exception as exc:  # one broken channel must not keep the alert from the others
                logger.error("%s.on_alert failed: %s", type(sink).__name__, exc, exc_info=True)

    def _evidence(self, camera: str) -> tuple[FrameResult, bytes]:
        """The camera's last analysed frame (what it saw before it went away), else a black picture."""
        last = self.last.get(camera)
        if last is not None:
            return last, encode_jpeg(last.frame.evidence_image)
        image = np.zeros((240, 320, 3), np.uint8)
        detection = Detection(score=1.0, verdict=Verdict.FAILURE)
        result = FrameResult(
            camera, Frame(image, time.time(), 0), detection, True, CameraState.CAMERA_OFFLINE, 0.0, 0
        )
        return result, encode_jpeg(image)
