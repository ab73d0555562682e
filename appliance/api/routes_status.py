"""Read endpoints: health, status, the newest frame, the MJPEG live view, events, alerts, settings.

Behind the token (bearer, or the console's session cookie) unless ``api.protect_reads = false``;
``GET /api/`` follows ``api.public_health`` (:mod:`appliance.api.auth`). Nothing here returns a
secret: the settings view is the validated configuration with every secret masked and credentials
stripped from URLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse

from appliance.api.events import BOUNDARY, mjpeg_frames
from appliance.sources.redact import MASK, redact_url

if TYPE_CHECKING:
    from appliance.api.sink import ApiSink

Responses = dict[int | str, dict[str, Any]]
#: every read endpoint may answer these (401 only with api.protect_reads)
READ_ERRORS: Responses = {
    400: {"description": "Malformed request"},
    404: {"description": "Unknown camera, alert or printer"},
    422: {"description": "Invalid parameters"},
}
router = APIRouter(prefix="/api", tags=["status"], responses=READ_ERRORS)  # app.py adds the read dependency
health_router = APIRouter(prefix="/api", tags=["status"])  # open unless api.public_health = false
JPEG: Responses = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG picture."},
    503: {"description": "No frame analysed yet"},
}
NOT_FOUND: Responses = {404: {"description": "Unknown camera or alert"}}
SECRET_WORDS = ("password", "token", "api_key", "webhook_url", "secret", "username")


def sink_of(request: Request) -> ApiSink:
    return request.app.state.sink  # type: ignore[no-any-return]


def known_camera(request: Request, name: str) -> str:
    if name not in sink_of(request).views:
        raise HTTPException(404, f"unknown camera {name[:32]!r}")
    return name


@health_router.get("/", response_class=PlainTextResponse)
def health() -> str:
    """Health check: ``OK`` (the Printer Realtime Bridge's); never needs the token, tells nothing."""
    return "OK"


@router.get("/status")
def status(request: Request) -> dict[str, Any]:
    """Every camera's state, score, decision, fps, calibration and linked printer, and the active alerts."""
    sink = sink_of(request)
    cameras = [sink.camera_status(name) for name in sink.cameras]
    return {
        "cameras": cameras,
        "active_alerts": [c["countdown"] | {"camera": c["name"]} for c in cameras if c.get("countdown")],
        "printer": sink.printer or None,
        "countdown_s": sink.config.alarm.countdown_s,
        "printer_action": getattr(sink.config.printer, "action", None),
    }


@router.get("/cameras/{name}/frame.jpg", response_class=Response, responses={**JPEG, **NOT_FOUND})
def frame(request: Request, name: str, overlay: int = Query(0, ge=0, le=1)) -> Response:
    """The newest analysed frame; ``overlay=1`` draws the evidence heatmap and the verdict on it."""
    data = sink_of(request).jpeg(known_camera(request, name), overlay=bool(overlay))
    if data is None:
        raise HTTPException(503, "no frame analysed yet", headers={"Retry-After": "1"})
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/cameras/{name}/stream", response_class=StreamingResponse, responses=NOT_FOUND)
def stream(request: Request, name: str) -> StreamingResponse:
    """MJPEG live view (``multipart/x-mixed-replace``), at most ``api.stream_max_fps`` frames a second."""
    sink, camera = sink_of(request), known_camera(request, name)
    parts = mjpeg_frames(
        lambda: sink.sequence(camera), lambda: sink.jpeg(camera), sink.api.stream_max_fps,
        lambda: sink.events.closed,
    )  # fmt: skip
    return StreamingResponse(parts, media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})  # fmt: skip


@router.get("/cameras/{name}/frames")
def recent_frames(request: Request, name: str) -> list[dict[str, Any]]:
    """The camera's recent analysed frames, newest first, each answerable by its ``frame_id``
    (``label``: ``<frame_id> ok|failure``; ``withdraw``: the frame id): score, verdict, ``unsure`` (the
    detector's uncertain band), ``question`` (the camera asks about it), ``answer`` and ``answer_ids``."""
    sink = sink_of(request)
    camera = known_camera(request, name)
    asked = sink.context.state_of(camera).get("questions")
    asked = asked if isinstance(asked, list) else []
    questions = [str(q.get("frame_id")) for q in asked if isinstance(q, dict)]
    return sink.frames.list(camera, questions)


@router.get("/cameras/{name}/frames/{frame_id}.jpg", response_class=Response, responses={**JPEG, **NOT_FOUND})
def recent_frame(request: Request, name: str, frame_id: str) -> Response:
    """A recent frame of the strip, small (128 x 96)."""
    data = sink_of(request).frames.thumbnail(known_camera(request, name), frame_id)
    if data is None:
        raise HTTPException(404, "that frame is no longer kept")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.get("/events", response_class=StreamingResponse)
def events(request: Request) -> StreamingResponse:
    """Server-sent events: ``camera``, ``state``, ``alert``, ``alert_update``, ``printer``, ``device``,
    ``calibration``, ``frames`` (a recent frame answered or withdrawn; see :mod:`appliance.api.events`)."""
    body = sink_of(request).events.stream(request.is_disconnected)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip


@router.get("/alerts")
def alerts(request: Request, limit: int = Query(50, ge=1, le=10000)) -> list[dict[str, Any]]:
    """The alert history, newest first (persisted, ``api.alerts_kept`` at most)."""
    return sink_of(request).alerts.list(limit)


@router.get("/alerts/{alert_id}.jpg", response_class=FileResponse, responses={**JPEG, **NOT_FOUND})
def alert_image(request: Request, alert_id: str) -> FileResponse:
    """The evidence image of one alert."""
    path = sink_of(request).alerts.image_path(alert_id)
    if path is None:
        raise HTTPException(404, "no such alert image")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/config")
def settings(request: Request) -> dict[str, Any]:
    """The running configuration, secrets masked (``**********``) and URLs without credentials."""
    return masked(sink_of(request).config.model_dump(mode="json"))


def masked(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: masked(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [masked(v, key) for v in node]
    if isinstance(node, str):
        # a key such as api_key_env names the environment variable that holds the secret: not secret
        if any(word in key.lower() for word in SECRET_WORDS) and not key.lower().endswith("_env"):
            return MASK if node else node
        return redact_url(node) if "://" in node else node
    return node
