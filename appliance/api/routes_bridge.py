"""The Printer Realtime Bridge's paths, for its users: ``/api/printers``, ``/api/printer/{id}``,
``/api/printer/{id}/image``.

A printer id is a camera (``api.printer_ids`` maps camera names to the bridge's ids, e.g.
``{ printer = "A1M-1" }``; default: the camera name). ``is_online`` is the camera delivering frames,
``has_status`` that it analysed one; the status is the camera's status (:func:`routes_status.status`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from appliance.api.routes_status import JPEG, READ_ERRORS, sink_of

router = APIRouter(prefix="/api", tags=["bridge"], responses=READ_ERRORS)  # app.py adds the read dependency


def _ids(request: Request) -> dict[str, str]:
    """printer id -> camera name."""
    sink = sink_of(request)
    return {sink.api.printer_ids.get(camera, camera): camera for camera in sink.cameras}


def _camera(request: Request, printer_id: str) -> str:
    camera = _ids(request).get(printer_id)
    if camera is None:
        raise HTTPException(404, f"unknown printer {printer_id[:32]!r}")
    return camera


@router.get("/printers")
def printers(request: Request) -> list[dict[str, Any]]:
    """Known printers: ``{printer_id, model, is_online, has_status}``."""
    sink = sink_of(request)
    out = []
    for printer_id, camera in _ids(request).items():
        state = sink.context.state_of(camera)
        out.append({
            "printer_id": printer_id,
            "camera": camera,
            "model": getattr(sink.config.printer, "type", None) or "camera",
            "is_online": state.get("camera_status") == "online",
            "has_status": sink.sequence(camera) is not None,
        })  # fmt: skip
    return out


@router.get("/printer/{printer_id}", responses={404: {"description": "Unknown printer"}})
def printer(request: Request, printer_id: str) -> dict[str, Any]:
    """The latest status of that printer's camera."""
    return {"printer_id": printer_id, **sink_of(request).camera_status(_camera(request, printer_id))}


@router.get("/printer/{printer_id}/image", response_class=Response,
            responses={**JPEG, 404: {"description": "Unknown printer"}})  # fmt: skip
def printer_image(request: Request, printer_id: str) -> Response:
    """The latest JPEG frame of that printer's camera."""
    data = sink_of(request).jpeg(_camera(request, printer_id))
    if data is None:
        raise HTTPException(503, "no frame yet", headers={"Retry-After": "1"})
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
