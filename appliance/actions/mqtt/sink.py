"""Publishes the appliance over MQTT and takes commands from it.

With ``P = <prefix>/<device_id>``:

* ``P/available``: retained ``online``/``offline`` (last will), see :mod:`.client`;
* ``P/<camera>/state``: retained JSON, on every state change and every change of the camera's
  ``camera_status`` (checked each loop tick, about once a second), after frames at most once per
  ``STATE_MIN_INTERVAL_S`` seconds (a 30 frames/s camera does not flood the broker), and at least
  every ``mqtt.state_interval_s`` seconds even when no frame arrives, so its ``time``,
  ``camera_status`` and ``error`` are never older than that; with a linked printer it also carries
  ``printer_state``, ``job_progress`` (percent) and ``job_file``;
* ``P/<camera>/event`` and the retained ``P/<camera>/snapshot`` JPEG: alerts, through the outbox
  (:mod:`.notifier`);
* ``P/event``: device events (rejected commands, printer countdown and action outcomes, job messages,
  history saving stopped/resumed, telemetry anomalies);
* ``P/job``, ``P/printer/telemetry`` and ``P/printer/temperatures``: retained job state, printer
  figures and the linked printer's heater readings, one per poll (:mod:`appliance.history`,
  :mod:`appliance.telemetry`, :mod:`appliance.actions.printer_control`): never on ``P/event``;
* ``P/telemetry``: every ``mqtt.telemetry_interval_s`` seconds: CPU temperature (C), fan duty
  (0..1), frames analysed, cloud calls and spend (USD), uptime (s);
* ``P/[<camera>/]<command>/set``: commands (:mod:`.commands`);
* ``<discovery_prefix>/device/<device_id>/config``: Home Assistant discovery (:mod:`.discovery`);
* ``MQTT_TOPIC``: the legacy ``{timestamp, print_failed, description}`` after each analysed frame.

Wiring: :func:`create_sinks` is listed in :data:`appliance.service.wiring.SINK_MODULES`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from appliance.actions.dispatcher import (
    AlertDispatcher,
    ChannelPolicy,
    event_hub,
    iso_now,
    set_aside_reporter,
)
from appliance.actions.mqtt.discovery import discovery_message
from appliance.decision import Alert, CameraState, Transition
from appliance.hardware.thermal import cpu_temperature_c
from appliance.history.discovery import history_components
from appliance.service.commands import Command
from appliance.service.pipeline import ActionSink, FrameResult

if TYPE_CHECKING:
    from appliance.actions.mqtt.client import MqttPublisher
    from appliance.config.model import LayerwatchConfig
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)

STATE_MIN_INTERVAL_S = 1.0
#: device events kept as retained state topics under P (appliance.history, appliance.telemetry)
RETAINED_DEVICE_TOPICS = {"job_state": "job", "printer_telemetry": "printer/telemetry",
                          "printer_temperatures": "printer/temperatures"}  # fmt: skip


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    if not config.mqtt.enabled:
        return []
    return [MqttSink(config, context)]


class MqttSink:
    def __init__(
        self, config: LayerwatchConfig, context: ServiceContext, publisher: MqttPublisher | None = None
    ):
        # paho-mqtt (through the client and the notifier) is imported only when MQTT is configured
        from appliance.actions.mqtt.client import MqttPublisher
        from appliance.actions.mqtt.notifier import MqttNotifier

        self.config = config.mqtt
        self.context = context
        self.publisher = publisher or MqttPublisher(config.mqtt)
        context.mqtt = self.publisher
        self._extra_components = history_components(config)
        self.state_of = context.state_of
        self.cameras = context.cameras
        outbox = context.state_dir / "outbox" / "mqtt"
        self.notifier = MqttNotifier(self.publisher, self.config, self.cameras, outbox)
        self.notifier.worker.outbox.storage = context.storage  # a full disk shows on state, light, systemd
        self.notifier.worker.outbox.on_set_aside = set_aside_reporter(event_hub(context), "mqtt")
        policy = ChannelPolicy(self.config.max_events_per_hour, send_repeats=True)
        self.dispatcher = AlertDispatcher([(self.notifier, policy)], context.commands)
        self._last_state_at: dict[str, float] = {}
        self._last_camera_status: dict[str, object] = {}  # camera -> camera_status last published
        self._last_frame_fields: dict[str, dict[str, object]] = {}  # score, decision of the last frame
        self._last_telemetry = 0.0
        self._started = time.monotonic()
        self._printer: dict[str, Any] = {}  # printer_state, job_progress, job_file
        self._printer_camera: str | None = None
        self._lock = threading.Lock()
        event_hub(context).listen(self._on_device_event)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.config.discovery:
            self.publisher.on_connected(self._publish_discovery)
        self.dispatcher.start()  # subscribes the command topics before the first connect
        self.publisher.start()

    def stop(self) -> None:
        self.dispatcher.stop()
        for camera in self.cameras:
            self.publisher.publish_state(camera, {**self.state_of(camera), "state": "stopped"})
        self.publisher.stop()

    def _publish_discovery(self) -> None:
        topic, payload = discovery_message(self.config, self.cameras, self._extra_components)
        self.publisher.publish(topic, payload, qos=1, retain=True)
        logger.info("Home Assistant discovery published on %s", topic)

    # -- state -------------------------------------------------------------------------------
    def publish_state(self, camera: str, extra: dict[str, object] | None = None) -> None:
        payload = self.state_of(camera)
        with self._lock:
            if self._printer and self._printer_camera in (None, camera):
                payload = {**payload, **self._printer}
        if extra:
            payload = {**payload, **extra}
        self.publisher.publish_state(camera, payload)
        self._last_state_at[camera] = time.monotonic()
        self._last_camera_status[camera] = payload.get("camera_status")

    def on_frame(self, result: FrameResult) -> None:
        d = result.detection
        now = time.monotonic()
        self._last_frame_fields[result.camera] = {"score": round(d.score, 4), "decision": d.verdict.value}
        if now - self._last_state_at.get(result.camera, 0.0) >= STATE_MIN_INTERVAL_S:
            self.publish_state(result.camera, self._last_frame_fields[result.camera])
        failed = result.state == CameraState.FAILURE
        description = (
            f"Print failure detected (score {d.score:.2f})."
            if failed
            else f"Frame analysed: {d.verdict.value} (score {d.score:.2f}), state {result.state.value}."
        )
        self.publisher.publish_status(_iso_now(), failed, description)

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        self.publish_state(camera, {k: v for k, v in detail.items() if k in ("score", "error")})

    # -- alerts and commands -----------------------------------------------------------------
    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        self.dispatcher.on_alert(camera, alert, result, evidence_jpeg)

    def on_command(self, command: Command) -> None:
        self.dispatcher.on_command(command)

    # -- telemetry and device events ---------------------------------------------------------
    def telemetry(self) -> dict[str, Any]:
        numbers = self.context.telemetry
        frames = 0
        for camera in self.cameras:
            analysed = self.state_of(camera).get("analysed", 0)
            frames += analysed if isinstance(analysed, int) else 0
        return {
            "time": iso_now(),
            "cpu_temperature_c": cpu_temperature_c(numbers),
            "fan_duty": numbers.get("fan_duty"),
            "frames_analysed": frames,
            "cloud_calls": int(numbers.get("cloud_calls", 0)),
            "cloud_spend_usd": round(float(numbers.get("cloud_spend_usd", 0.0)), 4),
            "uptime_s": round(time.monotonic() - self._started),
        }

    def on_tick(self, now: float) -> None:
        self.refresh_states(now)
        if now - self._last_telemetry >= self.config.telemetry_interval_s:
            self._last_telemetry = now
            topic = f"{self.publisher.base}/telemetry"
            self.publisher.publish_json(topic, self.telemetry(), qos=0, retain=True)

    def refresh_states(self, now: float) -> None:
        """Republish a camera's state when its ``camera_status`` changed since it was last published,
        or when it is ``mqtt.state_interval_s`` seconds old (called from the loop's tick)."""
        for camera in self.cameras:
            stale = now - self._last_state_at.get(camera, 0.0) >= self.config.state_interval_s
            status = self.state_of(camera).get("camera_status")
            if stale or status != self._last_camera_status.get(camera):
                self.publish_state(camera, self._last_frame_fields.get(camera))

    def _on_device_event(self, kind: str, payload: dict[str, Any]) -> None:
        """From the event hub (any thread): printer state into the state topic, the rest to P/event."""
        if kind == "printer_state":
            with self._lock:
                self._printer_camera = payload.get("camera")
                self._printer = {
                    "printer_state": payload.get("state"),
                    "job_progress": payload.get("progress"),
                    "job_file": payload.get("file"),
                }
            for camera in self.cameras:
                if self._printer_camera in (None, camera):
                    self.publish_state(camera)
            return
        if kind == "notification":
            return  # job messages: this sink's dispatcher sends them as events (through its outbox)
        if kind in RETAINED_DEVICE_TOPICS:
            topic = f"{self.publisher.base}/{RETAINED_DEVICE_TOPICS[kind]}"
            self.publisher.publish_json(topic, {**payload, "time": iso_now()}, qos=1, retain=True)
            return
        event = {"type": kind, **payload, "time": iso_now()}
        self.publisher.publish_json(f"{self.publisher.base}/event", event, qos=1)
