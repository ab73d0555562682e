"""Publishes pipeline results over MQTT: retained state, alert events, the legacy status message.

The retained state is published on every state change and otherwise at most once per
``STATE_MIN_INTERVAL_S`` seconds, so a 30 frames/s camera does not flood the broker; the legacy
``MQTT_TOPIC`` message goes out after each analysed frame, as the RTSP+Bedrock detector did.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.actions.mqtt import MqttPublisher
from appliance.decision import Alert, CameraState, Transition
from appliance.service.pipeline import ActionSink, FrameResult

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.wiring import ServiceContext

STATE_MIN_INTERVAL_S = 1.0


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    if not config.mqtt.enabled:
        return []
    return [MqttSink(MqttPublisher(config.mqtt), context.state_of, context.cameras)]


class MqttSink:
    def __init__(
        self, publisher: MqttPublisher, state_of: Callable[[str], dict[str, object]], cameras: list[str]
    ):
        self.publisher = publisher
        self.state_of = state_of
        self.cameras = cameras
        self._last_state_at: dict[str, float] = {}

    def start(self) -> None:
        self.publisher.start()

    def stop(self) -> None:
        for camera in self.cameras:
            self.publisher.publish_state(camera, {**self.state_of(camera), "state": "stopped"})
        self.publisher.stop()

    def publish_state(self, camera: str, extra: dict[str, object] | None = None) -> None:
        payload = self.state_of(camera)
        if extra:
            payload = {**payload, **extra}
        self.publisher.publish_state(camera, payload)
        self._last_state_at[camera] = time.monotonic()

    def on_frame(self, result: FrameResult) -> None:
        d = result.detection
        now = time.monotonic()
        if now - self._last_state_at.get(result.camera, 0.0) >= STATE_MIN_INTERVAL_S:
            self.publish_state(result.camera, {"score": round(d.score, 4), "decision": d.verdict.value})
        failed = result.state == CameraState.FAILURE
        description = (
            f"Print failure detected (score {d.score:.2f})."
            if failed
            else f"Frame analysed: {d.verdict.value} (score {d.score:.2f}), state {result.state.value}."
        )
        self.publisher.publish_status(_iso_now(), failed, description)

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        self.publish_state(camera, {k: v for k, v in detail.items() if k in ("score", "error")})

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        self.publisher.publish_event(
            camera,
            {
                "id": alert.id,
                "repeat": alert.repeat,
                "time": _iso_now(),
                "camera": camera,
                "score": round(alert.score, 4),
                "votes": alert.votes,
                "window": alert.window,
                "description": f"Print failure confirmed by {alert.burst_agree} of {alert.burst_frames} "
                f"verification frames and {alert.votes} of the last {alert.window} frames.",
            },
        )
