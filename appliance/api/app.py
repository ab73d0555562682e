"""The FastAPI application: routers by concern, the web console's static files, the OpenAPI schema.

* :mod:`.routes_status`: health, status, frames, MJPEG stream, events, alert history, settings;
* :mod:`.routes_control`: everything that changes something (bearer token always);
* :mod:`.routes_bridge`: the Printer Realtime Bridge's ``/api/printers`` and ``/api/printer/{id}``;
* ``GET /metrics`` (:mod:`.metrics`), ``GET /`` and ``/static/*`` (the console, package data under
  ``appliance/api/static``, no build step).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from appliance.api import routes_bridge, routes_control, routes_status
from appliance.api.access import read_access

if TYPE_CHECKING:
    from appliance.api.sink import ApiSink

STATIC = Path(str(files("appliance.api") / "static"))


def build_app(sink: ApiSink) -> FastAPI:
    app = FastAPI(
        title="Layerwatch",
        version="1",
        description="The appliance's local API: status, live view, alerts, control. Control endpoints need "
        "`Authorization: Bearer <token>`.",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.sink = sink
    app.state.auth = sink.auth
    # the schema says what is true for this configuration: reads need the token only with protect_reads
    reads = [Depends(read_access)] if sink.api.protect_reads else []
    app.include_router(routes_status.health_router)
    app.include_router(routes_status.router, dependencies=reads)
    app.include_router(routes_control.router)
    app.include_router(routes_bridge.router, dependencies=reads)

    @app.get("/metrics", tags=["status"], dependencies=reads, response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})  # fmt: skip
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(sink.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
