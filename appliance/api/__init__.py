"""The local web console and HTTP API: one more action sink of the service.

:class:`~appliance.api.sink.ApiSink` keeps snapshots of what the pipelines publish (the newest frame and
detection per camera, state changes, alerts) and serves them with FastAPI on uvicorn in its own thread
(:mod:`appliance.api.server`); commands from the page go into the service's command queue like MQTT's.
The analysis loop only ever stores references and counters: no HTTP client can make it wait.

Wiring: :func:`create_sinks` is listed in :data:`appliance.service.wiring.SINK_MODULES`; the ``[api]``
table is :class:`appliance.config.api.ApiConfig`. A generated token the disk would not take is kept by
:mod:`.token_keeper`.
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
    from appliance.api.token_keeper import prepare_token

    config, keeper = prepare_token(config, context)  # a full disk at the first start keeps it in memory
    return [ApiSink(config, context), *([keeper] if keeper is not None else [])]
