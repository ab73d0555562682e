"""Which action sinks and which judge a configuration gets.

Every integration is one module exposing ``create_sinks(config, context) -> list[ActionSink]``
(an empty list when the config does not ask for it). Adding an integration means adding its module
to :data:`SINK_MODULES`; the service loop itself does not change.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config.model import LayerwatchConfig
from appliance.service.commands import CommandQueue
from appliance.service.pipeline import ActionSink, Judge
from appliance.service.storage_health import StorageHealth

logger = logging.getLogger(__name__)

SINK_MODULES = (
    "appliance.actions.mqtt.sink",  # MQTT state, events, discovery, commands
    "appliance.actions.notifiers",  # Discord, Telegram
    "appliance.actions.printer_control",  # OctoPrint, Moonraker
    "appliance.hardware.board_sink",  # status LED, buzzer, relay, button
    "appliance.history.sink",  # job records, frames, timelapses, job messages
    "appliance.telemetry.sink",  # printer sensor anomalies (after mqtt.sink: uses its connection)
    "appliance.actions.camera_loss",  # a camera offline or frozen during a print: its own alert
    "appliance.api",  # the local web console and HTTP API
)


@dataclass
class ServiceContext:
    """What integrations may use of the running service."""

    commands: CommandQueue
    state_of: Callable[[str], dict[str, object]]
    cameras: list[str]
    state_dir: Path
    #: numbers for telemetry, written by whoever owns them (e.g. "cpu_temperature_c", "throttled")
    telemetry: dict[str, float] = field(default_factory=dict)
    #: the sinks built so far (build_sinks fills it): sinks that raise alerts of their own use it
    sinks: list[ActionSink] = field(default_factory=list)
    #: the MQTT connection (an appliance.actions.mqtt.client.MqttPublisher) once mqtt.sink made one
    mqtt: Any = None
    #: writes under state_dir failing now (a full disk): reported by outboxes and evidence, shown on
    #: the MQTT state, the status light and systemd's STATUS=
    storage: StorageHealth = field(default_factory=StorageHealth)
    #: standing conditions, each shown on systemd's STATUS= line (e.g. "cloud judge bedrock off: ...")
    notes: list[str] = field(default_factory=list)
    #: set by the service at READY (every camera analysed a first frame or is offline); None outside the
    #: service. Start-up work that can wait (the web stack's imports) waits for it.
    ready: threading.Event | None = None


def build_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    sinks: list[ActionSink] = context.sinks
    for name in SINK_MODULES:
        module = importlib.import_module(name)
        created = module.create_sinks(config, context)
        if created:
            logger.info("%s: %d sink(s)", name.rsplit(".", 1)[-1], len(created))
        sinks.extend(created)
    report_set_asides(context)
    return sinks


def report_set_asides(context: ServiceContext) -> None:
    """Every state file set aside (:func:`appliance.state_files.set_aside`) becomes a
    ``state_file_set_aside`` device event (MQTT ``P/event``, the console), those of the model's start-up
    (``backend.json``) included. A camera's own files (under ``cameras/<name>/``) are left to its
    pipeline, which reports them with the camera's name once the loop starts."""
    from appliance.actions.dispatcher import event_hub
    from appliance.state_files import listen_set_aside

    hub = event_hub(context)
    cameras = context.state_dir / "cameras"

    def report(path: Path, target: Path, reason: str) -> None:
        if path.is_relative_to(cameras):
            return
        name = path.relative_to(context.state_dir) if path.is_relative_to(context.state_dir) else path
        message = f"{name} unreadable ({reason[:200]}); set aside as {target.name}"
        hub.emit("state_file_set_aside", {"camera": None, "file": str(name), "message": message})

    listen_set_aside(report)


def build_judge(config: LayerwatchConfig, context: ServiceContext) -> Judge | None:
    module = importlib.import_module("appliance.cloud")
    factory: Callable[[LayerwatchConfig, ServiceContext], Judge | None] = module.create_judge
    return factory(config, context)
