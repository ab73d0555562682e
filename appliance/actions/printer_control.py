"""Pausing the printer through OctoPrint or Moonraker (the integrations issue fills this in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    return []
