"""``GET /metrics``: the appliance in Prometheus text format (prometheus-client, its own registry).

Updated by the API sink from the analysis loop (counter increments and one histogram observation per
frame) and read from ``context.telemetry`` at scrape time (CPU temperature, fan duty, cloud calls and
spend, as the thermal governor and the cloud judge publish them):

* ``layerwatch_frames_analysed_total{camera}``, ``layerwatch_decisions_total{camera,decision}``
* ``layerwatch_failure_score{camera}`` (last frame, 0..1), ``layerwatch_camera_fps{camera}``
* ``layerwatch_inference_latency_seconds{camera}`` (histogram: preprocessing + inference)
* ``layerwatch_alerts_total{camera}`` (reminders included), ``layerwatch_api_event_clients``
* ``layerwatch_cloud_calls``, ``layerwatch_cloud_spend_usd`` (this month),
  ``layerwatch_cpu_temperature_celsius``,
  ``layerwatch_fan_duty`` (0..1), each only when known;
* ``layerwatch_printer_value{signal}``: the printer telemetry's latest figures (``nozzle_temp``,
  ``bed_temp``, ``layer_height``, ... as :mod:`appliance.telemetry.sink` stores them: ``printer_<signal>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from appliance.hardware.thermal import cpu_temperature_c
from appliance.service.pipeline import FrameResult

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class _TelemetryCollector(Collector):
    def __init__(self, telemetry: dict[str, float], event_clients: Callable[[], int]):
        self.telemetry = telemetry
        self.event_clients = event_clients

    def collect(self) -> Iterator[GaugeMetricFamily]:
        numbers = dict(self.telemetry)
        known = {
            "layerwatch_cpu_temperature_celsius": ("CPU temperature (C)", cpu_temperature_c(numbers)),
            "layerwatch_fan_duty": ("Fan duty cycle (0..1)", numbers.get("fan_duty")),
            "layerwatch_cloud_calls": ("Cloud judge calls since start", numbers.get("cloud_calls")),
            "layerwatch_cloud_spend_usd": ("Cloud spend this month (USD)", numbers.get("cloud_spend_usd")),
            "layerwatch_api_event_clients": ("Connected event-stream clients", float(self.event_clients())),
        }
        for name, (help_text, value) in known.items():
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=float(value))
        printer = GaugeMetricFamily(
            "layerwatch_printer_value", "Printer telemetry, latest value per signal", labels=["signal"]
        )
        for key, value in sorted(numbers.items()):
            if key.startswith("printer_") and isinstance(value, int | float):
                printer.add_metric([key.removeprefix("printer_")], float(value))
        if printer.samples:
            yield printer


class ApiMetrics:
    def __init__(self, telemetry: dict[str, float], event_clients: Callable[[], int] = lambda: 0):
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames = Counter(
            "layerwatch_frames_analysed", "Frames analysed", ["camera"], registry=self.registry
        )
        self.decisions = Counter(
            "layerwatch_decisions", "Per-frame decisions", ["camera", "decision"], registry=self.registry
        )
        self.score = Gauge("layerwatch_failure_score", "Failure score of the last frame", ["camera"],
                           registry=self.registry)  # fmt: skip
        self.fps = Gauge(
            "layerwatch_camera_fps", "Frames analysed per second", ["camera"], registry=self.registry
        )
        self.latency = Histogram(
            "layerwatch_inference_latency_seconds", "Preprocessing + inference per frame", ["camera"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.alerts = Counter("layerwatch_alerts", "Alerts raised (reminders too)", ["camera"],
                              registry=self.registry)  # fmt: skip
        self.registry.register(_TelemetryCollector(telemetry, event_clients))

    def observe(self, result: FrameResult) -> None:
        d = result.detection
        self.frames.labels(result.camera).inc()
        self.decisions.labels(result.camera, d.verdict.value).inc()
        self.score.labels(result.camera).set(d.score)
        self.fps.labels(result.camera).set(result.fps)
        self.latency.labels(result.camera).observe(d.latency_ms / 1000.0)
