"""``/metrics`` carries the printer telemetry's figures (issue 18: "and Prometheus once the API exists")."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from appliance.api.metrics import ApiMetrics


def test_printer_figures_are_exported_per_signal() -> None:
    telemetry: dict[str, float] = {"printer_nozzle_temp": 214.5, "printer_bed_temp": 60.0, "fan_duty": 0.4}
    metrics = ApiMetrics(telemetry)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    samples = {s.labels["signal"]: s.value for s in families["layerwatch_printer_value"].samples}
    assert samples == {"nozzle_temp": 214.5, "bed_temp": 60.0}
    assert families["layerwatch_fan_duty"].samples[0].value == 0.4
    telemetry["printer_layer_height"] = 0.2  # read at scrape time: a new signal appears at the next scrape
    text = generate_latest(metrics.registry).decode()
    assert 'layerwatch_printer_value{signal="layer_height"} 0.2' in text


def test_no_printer_family_without_printer_figures() -> None:
    text = generate_latest(ApiMetrics({}).registry).decode()
    assert "layerwatch_printer_value" not in text
