"""Home Assistant MQTT discovery, device-based: one retained config message describes the whole
appliance (``<discovery_prefix>/device/<device_id>/config``).

The payload carries ``dev`` (identifiers, name, manufacturer, model, sw version), ``o`` (origin:
the software publishing it) and ``cmps`` (components), each component with its platform ``p`` and
a ``unique_id``. Availability is shared by every component: ``<prefix>/<device_id>/available``
(``online``/``offline``, the last will), so every entity goes unavailable when the service dies.

Per camera: a ``problem`` binary_sensor (state ``failure``), score and state sensors, the evidence
snapshot as an ``image`` entity, a monitoring switch, an acknowledge button and "false alarm" / "real
failure" buttons that answer the newest alert. For the appliance:
test alarm and pause print buttons, CPU temperature and frames analysed sensors from telemetry.
"""

from __future__ import annotations

import json
from typing import Any

from appliance import __version__
from appliance.config.integrations import MqttConfig

ORIGIN = {"name": "layerwatch", "sw": __version__}


def discovery_topic(config: MqttConfig) -> str:
    return f"{config.discovery_prefix}/device/{config.device_id}/config"


def _camera_components(config: MqttConfig, base: str, camera: str) -> dict[str, dict[str, Any]]:
    uid = f"{config.device_id}_{camera}"
    state = f"{base}/{camera}/state"
    return {
        f"{uid}_failure": {
            "p": "binary_sensor",
            "name": f"{camera} print failure",
            "unique_id": f"{uid}_failure",
            "device_class": "problem",
            "state_topic": state,
            "value_template": "{{ 'ON' if value_json.state == 'failure' else 'OFF' }}",
            "json_attributes_topic": state,
        },
        f"{uid}_score": {
            "p": "sensor",
            "name": f"{camera} failure score",
            "unique_id": f"{uid}_score",
            "state_topic": state,
            "value_template": "{{ value_json.score | default(0) }}",
            "state_class": "measurement",
            "suggested_display_precision": 2,
        },
        f"{uid}_state": {
            "p": "sensor",
            "name": f"{camera} state",
            "unique_id": f"{uid}_state",
            "state_topic": state,
            "value_template": "{{ value_json.state }}",
            "icon": "mdi:printer-3d",
        },
        f"{uid}_snapshot": {
            "p": "image",
            "name": f"{camera} evidence",
            "unique_id": f"{uid}_snapshot",
            "image_topic": f"{base}/{camera}/snapshot",
            "content_type": "image/jpeg",
        },
        f"{uid}_monitoring": {
            "p": "switch",
            "name": f"{camera} monitoring",
            "unique_id": f"{uid}_monitoring",
            "command_topic": f"{base}/{camera}/monitoring/set",
            "state_topic": state,
            "value_template": "{{ 'OFF' if value_json.state == 'paused' else 'ON' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_on": "ON",
            "state_off": "OFF",
            "icon": "mdi:eye",
        },
        f"{uid}_acknowledge": {
            "p": "button",
            "name": f"{camera} acknowledge",
            "unique_id": f"{uid}_acknowledge",
            "command_topic": f"{base}/{camera}/acknowledge/set",
            "payload_press": "PRESS",
            "icon": "mdi:bell-off",
        },
        # answers to the newest alert: the camera's learner learns from them (service.camera_answers)
        **{
            f"{uid}_{word}": {
                "p": "button",
                "name": f"{camera} {label}",
                "unique_id": f"{uid}_{word}",
                "command_topic": f"{base}/{camera}/{word}/set",
                "payload_press": "PRESS",
                "icon": icon,
            }
            for word, label, icon in (
                ("false_alarm", "false alarm", "mdi:thumb-down"),
                ("real_failure", "real failure", "mdi:thumb-up"),
                ("skip_print", "don't watch this print", "mdi:eye-off"),  # until the print ends
            )
        },
    }


def discovery_payload(
    config: MqttConfig, cameras: list[str], extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``extra``: more components (job and telemetry sensors, :mod:`appliance.history.discovery`)."""
    base = f"{config.prefix}/{config.device_id}"
    uid = config.device_id
    components: dict[str, dict[str, Any]] = dict(extra or {})
    for camera in cameras:
        components.update(_camera_components(config, base, camera))
    components[f"{uid}_test_alarm"] = {
        "p": "button", "name": "Test alarm", "unique_id": f"{uid}_test_alarm",
        "command_topic": f"{base}/test_alarm/set", "payload_press": "PRESS", "icon": "mdi:alarm-bell",
    }  # fmt: skip
    components[f"{uid}_pause_print"] = {
        "p": "button", "name": "Pause print", "unique_id": f"{uid}_pause_print",
        "command_topic": f"{base}/pause_print/set", "payload_press": "PRESS", "icon": "mdi:pause",
    }  # fmt: skip
    components[f"{uid}_cpu_temperature"] = {
        "p": "sensor", "name": "CPU temperature", "unique_id": f"{uid}_cpu_temperature",
        "state_topic": f"{base}/telemetry", "value_template": "{{ value_json.cpu_temperature_c }}",
        "device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement",
        "entity_category": "diagnostic",
    }  # fmt: skip
    components[f"{uid}_frames"] = {
        "p": "sensor", "name": "Frames analysed", "unique_id": f"{uid}_frames",
        "state_topic": f"{base}/telemetry", "value_template": "{{ value_json.frames_analysed }}",
        "state_class": "total_increasing", "entity_category": "diagnostic",
    }  # fmt: skip
    return {
        "dev": {
            "ids": [f"layerwatch_{uid}"],
            "name": f"Layerwatch {uid}",
            "mf": "Layerwatch",
            "mdl": "Print failure detector",
            "sw": __version__,
        },
        "o": ORIGIN,
        "cmps": components,
        "availability_topic": f"{base}/available",
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
    }


def discovery_message(
    config: MqttConfig, cameras: list[str], extra: dict[str, dict[str, Any]] | None = None
) -> tuple[str, str]:
    """(topic, JSON payload) of the retained discovery message."""
    payload = discovery_payload(config, cameras, extra)
    return discovery_topic(config), json.dumps(payload, separators=(",", ":"))
