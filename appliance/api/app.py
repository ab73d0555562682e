"""The FastAPI application: routers by concern, the web console's static files, the OpenAPI schema.

* :mod:`.routes_status`: health, status, frames, MJPEG stream, events, alert history, settings;
* :mod:`.routes_control`: everything that changes something (bearer token always);
* :mod:`.routes_bridge`: the Printer Realtime Bridge's ``/api/printers`` and ``/api/printer/{id}``;
* :mod:`.routes_session`: the console's login (``/api/session``);
* :mod:`.routes_settings`: the settings a user changes often (``/api/settings``);
* :mod:`.routes_history`: print review (``/api/jobs``: outcome, frames, timelapse, labelling a print);
* :mod:`.headers`: the Content-Security-Policy and the other security headers on every answer;
* ``GET /metrics`` (:mod:`.metrics`), ``GET /`` and ``/static/*`` (the console, package data under
  ``appliance/api/static``, no build step).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from appliance.api import (
    routes_bridge,
    routes_control,
    routes_history,
    routes_session,
    routes_settings,
    routes_status,
)
from appliance.api.access import read_access
from appliance.api.headers import SecurityHeaders

if TYPE_CHECKING:
    from appliance.api.sink import ApiSink

STATIC = Path(str(files("appliance.api") / "static"))


def build_app(sink: ApiSink) -> FastAPI:
    app = FastAPI(
        title="Layerwatch",
        version="1",
        description="The appliance's local API: status, live view, alerts, control. Control endpoints need "
        "`Authorization: Bearer <token>`; read endpoints too unless `api.protect_reads = false`.",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.sink = sink
    app.state.auth = sink.auth
    # the schema says what is true for this configuration: reads need the token only with protect_reads
    reads = [Depends(read_access)] if sink.api.protect_reads else []
    Answers = dict[int | str, dict[str, Any]]
    denied: Answers = {401: {"description": "Sign in first: missing or wrong token"}} if reads else {}
    health = [] if sink.api.public_health else reads
    app.include_router(routes_status.health_router, dependencies=health, responses=denied if health else {})
    app.include_router(routes_status.router, dependencies=reads, responses=denied)
    app.include_router(routes_control.router)
    app.include_router(routes_bridge.router, dependencies=reads, responses=denied)
    app.include_router(routes_session.router)
    app.include_router(routes_settings.read_router, dependencies=reads, responses=denied)
    app.include_router(routes_settings.router)
    app.include_router(routes_history.read_router, dependencies=reads, responses=denied)
    app.include_router(routes_history.router)
    metrics_deps = [] if sink.api.public_metrics else reads
    metrics_answers: Answers = {
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        **(denied if metrics_deps else {}),
    }

    @app.get("/metrics", tags=["status"], dependencies=metrics_deps, response_class=Response,
             responses=metrics_answers)  # fmt: skip
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(sink.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
    return app
