"""The telemetry action sink: printer figures in, anomaly alerts and control messages out.

In: the JSON samples on ``telemetry.sensor_topic`` (``printing/<printer_id>/sensor``: ``nozzle_temp``,
``bed_temp``, ``layer_height``, ``roughness``, ... as the monitoring system publishes them), over the
service's MQTT connection, and with ``telemetry.from_printer`` the temperatures the printer's poll reads
(``printer_temperatures`` events: ``nozzle_temp``, ``nozzle_target``, ``bed_temp``, ``bed_target``).

Out, for each finding of :class:`~appliance.telemetry.detector.AnomalyDetector`:

* an alert with the finding's words (``Alert.cause``) through every other sink, as a camera's failure
  goes: LED and buzzer, MQTT event, Discord, Telegram; the linked printer's countdown only with
  ``telemetry.pause_printer``; on the camera ``telemetry.camera`` (else ``printer.camera``, else the first);
* with ``telemetry.control`` ``adjust`` or ``pause``: one JSON message on ``telemetry.control_topic``
  (``printer/control/<printer_id>``, QoS 1): ``{"printer_id", "action", "anomaly", "signal", "value",
  "target", "set", "reason", "time"}``, where ``set`` is ``{<target_key>: target}`` for an adjustment.

Figures: every ``telemetry.publish_interval_s`` the retained ``printer_telemetry`` event
(MQTT ``<prefix>/<device_id>/printer/telemetry``: latest value per signal, active findings, samples,
alerts) and ``printer_<signal>`` numbers in the service's telemetry (for Prometheus).

Threads: samples arrive on paho's and the printer poll's threads and are judged there (microseconds);
findings are raised from ``on_tick`` on the analysis loop, like every other alert.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from appliance.actions.dispatcher import EventHub, event_hub, iso_now
from appliance.actions.evidence import encode_jpeg
from appliance.decision import Alert, CameraState, Transition
from appliance.detector import Detection, Verdict
from appliance.service.pipeline import FrameResult
from appliance.sources import Frame
from appliance.telemetry.detector import Anomaly, AnomalyDetector

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    if not config.telemetry.enabled:
        return []
    return [TelemetrySink(config, context, event_hub(context))]


class TelemetrySink:
    def __init__(self, config: LayerwatchConfig, context: ServiceContext, hub: EventHub):
        self.config = config.telemetry
        self.context = context
        self.hub = hub
        printer_camera = config.printer.camera if config.printer is not None else None
        self.camera = (
            self.config.camera or printer_camera or (context.cameras[0] if context.cameras else "printer")
        )
        self.detector = AnomalyDetector(self.config)
        self.sensor_topic = self.config.topic(self.config.sensor_topic) if self.config.sensor_topic else None
        self.control_topic = (
            self.config.topic(self.config.control_topic) if self.config.control_topic else None
        )
        self._lock = threading.Lock()
        self._pending: list[Anomaly] = []
        self._last_result: dict[str, FrameResult] = {}
        self._last_publish = -float("inf")
        self.samples = 0
        self.rejected = 0
        self.alerts: list[Anomaly] = []  # raised by this run (tests, figures)
        self.controls: list[dict[str, Any]] = []
        hub.listen(self._on_hub_event)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        mqtt = self.context.mqtt
        if self.sensor_topic and mqtt is not None:
            mqtt.subscribe(self.sensor_topic, self._on_sensor)
            logger.info("telemetry: watching %s (alerts on camera %s)", self.sensor_topic, self.camera)
        elif self.sensor_topic:
            logger.warning("telemetry: %s needs mqtt.broker_url: not subscribed", self.sensor_topic)

    # -- samples (paho's thread, the printer poll's thread) -----------------------------------
    def _on_sensor(self, topic: str, payload: bytes) -> None:
        try:
            sample = json.loads(payload)
            if not isinstance(sample, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.rejected += 1
            logger.debug("telemetry: sample on %s ignored: %s", topic, exc)
            return
        self.observe(topic, sample)

    def _on_hub_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "printer_temperatures" and self.config.from_printer:
            self.observe("printer", {k: v for k, v in payload.items() if k != "camera"})

    def observe(self, stream: str, sample: dict[str, Any], now: float | None = None) -> None:
        with self._lock:
            self.samples += 1
            found = self.detector.observe(stream, sample, time.monotonic() if now is None else now)
            self._pending.extend(found)
        for key, value in self.detector.latest().items():
            self.context.telemetry[f"printer_{key}"] = value

    # -- sink calls (analysis loop) ------------------------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        self._last_result[result.camera] = result

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        pass

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        pass

    def on_tick(self, now: float) -> None:
        with self._lock:
            found = self._pending + self.detector.check_dropouts(now)
            self._pending = []
        for anomaly in found:
            self.raise_alert(anomaly)
        if now - self._last_publish >= self.config.publish_interval_s:
            self._last_publish = now
            self.hub.emit("printer_telemetry", self.figures())

    def figures(self) -> dict[str, Any]:
        with self._lock:
            return {
                "printer_id": self.config.printer_id,
                **self.detector.latest(),
                "anomalies": self.detector.active(),
                "samples": self.samples,
                "rejected": self.rejected,
                "alerts": len(self.alerts),
            }

    # -- findings out --------------------------------------------------------------------------
    def raise_alert(self, anomaly: Anomaly) -> None:
        logger.warning("telemetry anomaly on %s: %s", self.camera, anomaly.words)
        self.alerts.append(anomaly)
        alert = Alert(uuid.uuid4().hex[:12], self.camera, 1.0, 0, 0, 0, 0, cause=anomaly.words)
        # what was seen, for the console's alert history (signal, value, limit; appliance.api.sink)
        self.hub.emit(
            "telemetry_alert",
            {"alert": alert.id, "camera": self.camera, **anomaly.to_json(), "limit": self._limit(anomaly)},
        )
        result, jpeg = self._evidence(anomaly)
        from appliance.actions.printer_control import PrinterControl  # late: it imports the pipeline

        for sink in list(self.context.sinks):
            if sink is self or (isinstance(sink, PrinterControl) and not self.config.pause_printer):
                continue
            try:
                sink.on_alert(self.camera, alert, result, jpeg)
            except Exception as exc:  # one broken channel must not keep the alert from the others
                logger.error("%s.on_alert failed: %s", type(sink).__name__, exc, exc_info=True)
        self.control(anomaly)

    def _limit(self, anomaly: Anomaly) -> str | None:
        """The rule's limit in words, for the console (``[min, max]``, ``+-delta of the target``...)."""
        if anomaly.kind == "dropout":
            return f"a sample every {self.config.dropout_s:g} s"
        cfg = self.config.signals.get(anomaly.signal)
        if cfg is None:
            return None
        if anomaly.kind == "out_of_range":
            low = "-inf" if cfg.min is None else f"{cfg.min:g}"
            return f"[{low}, {'inf' if cfg.max is None else f'{cfg.max:g}'}]"
        if anomaly.kind == "runaway" and cfg.runaway_delta is not None:
            return f"target {anomaly.target or 0:g} +- {cfg.runaway_delta:g}"
        if anomaly.kind == "heater_not_heating":
            return f"+{cfg.heating_min_rise:g} within {cfg.heating_timeout_s or 0:g} s"
        if anomaly.kind == "outlier" and cfg.zscore is not None:
            return f"robust z <= {cfg.zscore:g}"
        return None

    def control(self, anomaly: Anomaly) -> None:
        mqtt = self.context.mqtt
        if self.config.control == "none" or not self.control_topic or mqtt is None:
            return
        message: dict[str, Any] = {
            "printer_id": self.config.printer_id,
            "action": self.config.control,
            "anomaly": anomaly.kind,
            "signal": anomaly.signal,
            "value": anomaly.value,
            "target": anomaly.target,
            "reason": anomaly.words,
            "time": iso_now(),
        }
        signal = self.config.signals.get(anomaly.signal)
        if self.config.control == "adjust" and signal is not None and signal.target_key and anomaly.target:
            message["set"] = {signal.target_key: anomaly.target}
        mqtt.publish_json(self.control_topic, message, qos=1)
        self.controls.append(message)
        logger.warning("telemetry: %s sent to %s (%s)", self.config.control, self.control_topic, anomaly.kind)

    def _evidence(self, anomaly: Anomaly) -> tuple[FrameResult, bytes]:
        last = self._last_result.get(self.camera)
        image = last.frame.evidence_image.copy() if last is not None else np.zeros((240, 320, 3), np.uint8)
        scale = max(0.4, image.shape[1] / 900)
        cv2.rectangle(image, (0, 0), (image.shape[1], int(28 * scale + 8)), (0, 0, 160), -1)
        cv2.putText(
            image,
            anomaly.words[:90],
            (6, int(22 * scale + 2)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        if last is not None:
            result = FrameResult(
                last.camera, last.frame, last.detection, True, last.state, last.fps, last.analysed
            )
        else:
            detection = Detection(score=1.0, verdict=Verdict.FAILURE)
            frame = Frame(image, time.time(), 0)
            result = FrameResult(self.camera, frame, detection, True, CameraState.WATCHING, 0.0, 0)
        return result, encode_jpeg(image)
