"""Home Assistant discovery components for print history and printer telemetry, added to the
appliance's device by :mod:`appliance.actions.mqtt.sink` when ``history`` / ``telemetry`` are enabled.

History (state topic ``<prefix>/<device_id>/job``, retained): job name, job progress (%), job outcome
and last timelapse (its path). Telemetry (``<prefix>/<device_id>/printer/telemetry``, retained):
nozzle and bed temperature (°C) and the active anomalies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig


OUTCOME_TEMPLATE = "{{ value_json.outcome or ('running' if value_json.active else '') }}"


def _sensor(uid: str, key: str, name: str, topic: str, template: str, **more: Any) -> dict[str, Any]:
    return {"p": "sensor", "name": name, "unique_id": f"{uid}_{key}", "state_topic": topic,
            "value_template": template, **more}  # fmt: skip


def history_components(config: LayerwatchConfig) -> dict[str, dict[str, Any]]:
    uid = config.mqtt.device_id
    base = f"{config.mqtt.prefix}/{uid}"
    components: dict[str, dict[str, Any]] = {}
    if config.history.enabled:
        job = f"{base}/job"
        for key, name, template, more in (
            ("job_name", "Job name", "{{ value_json.name }}", {"icon": "mdi:file-outline",
                                                               "json_attributes_topic": job}),
            ("job_progress", "Job progress", "{{ value_json.progress | default(0, true) }}",
             {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:progress-clock"}),
            ("job_outcome", "Job outcome", OUTCOME_TEMPLATE, {"icon": "mdi:flag-checkered"}),
            ("last_timelapse", "Last timelapse", "{{ value_json.last_timelapse or '' }}",
             {"icon": "mdi:filmstrip"}),
        ):  # fmt: skip
            components[f"{uid}_{key}"] = _sensor(uid, key, name, job, template, **more)
    if config.telemetry.enabled:
        topic = f"{base}/printer/telemetry"
        for signal, name in (("nozzle_temp", "Nozzle temperature"), ("bed_temp", "Bed temperature")):
            components[f"{uid}_{signal}"] = _sensor(
                uid, signal, name, topic, f"{{{{ value_json.{signal} | default(none) }}}}",
                device_class="temperature", unit_of_measurement="°C", state_class="measurement",
            )  # fmt: skip
        components[f"{uid}_printer_anomalies"] = _sensor(
            uid, "printer_anomalies", "Printer anomalies", topic, "{{ value_json.anomalies | join(', ') }}",
            icon="mdi:alert-decagram",
        )  # fmt: skip
    return components
