"""The local web console and HTTP API: one more action sink of the service.

:class:`~appliance.api.sink.ApiSink` keeps snapshots of what the pipelines publish (the newest frame and
detection per camera, state changes, alerts) and serves them with FastAPI on uvicorn in its own thread
(:mod:`appliance.api.server`); commands from the page go into the service's command queue like MQTT's.
The analysis loop only ever stores references and counters: no HTTP client can make it wait.

Wiring: :func:`create_sinks` is listed in :data:`appliance.service.wiring.SINK_MODULES`; the ``[api]``
table is :class:`appliance.config.api.ApiConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    if not config.api.enabled:
        return []
    from appliance.api.sink import ApiSink  # FastAPI is imported only when the API is on

    return [ApiSink(config, context)]
