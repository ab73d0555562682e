"""Control endpoints: every one needs ``Authorization: Bearer <token>`` (401 otherwise).

Each request becomes a :class:`~appliance.service.commands.Command` (origin ``api``) in the service's
command queue, handled by the analysis loop like an MQTT command; the answer is 202 with the command
queued. ``camera`` omitted (or null) means every camera. The answers and every other MQTT command word
(``false_alarm``, ``real_failure``, ``label``, ``withdraw``, ``monitoring``, ``relay``, ...) are also
accepted as ``POST /api/commands/{word}`` with the MQTT payload, parsed by the MQTT command parser.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from appliance.actions.mqtt.commands import COMMANDS, parse_command
from appliance.api.access import control_access
from appliance.api.routes_status import known_camera, sink_of
from appliance.detector.ignore_zones import MAX_ZONES, parse_zones
from appliance.errors import CommandRejectedError
from appliance.image_guard import ImageTooLargeError, camera_pixel_limit, decode_image, image_size
from appliance.service.commands import Command, CommandKind

DENIED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request body"},
    401: {"description": "Missing or wrong bearer token"},
    404: {"description": "Unknown camera or command"},
    413: {"description": "Upload too large"},
    422: {"description": "Invalid parameters or payload"},
}
router = APIRouter(prefix="/api", tags=["control"], dependencies=[Depends(control_access)], responses=DENIED)
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
IMAGE_TYPES = ("image/jpeg", "image/png")
BINARY = {"type": "string", "format": "binary"}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {t: {"schema": BINARY} for t in IMAGE_TYPES}}}
SIMPLE = {
    "acknowledge": CommandKind.ACKNOWLEDGE,
    "pause": CommandKind.PAUSE,
    "resume": CommandKind.RESUME,
    "test_alarm": CommandKind.TEST_ALARM,
    "pause_print": CommandKind.PAUSE_PRINT,
    "cancel_print": CommandKind.CANCEL_PRINT,
}


class Target(BaseModel):
    camera: str | None = Field(None, description="Camera name; null: every camera.")


class Accepted(BaseModel):
    accepted: bool = True
    command: str
    camera: str | None


class Calibrate(BaseModel):
    frames: int | None = Field(None, ge=1, le=500, description="Normal frames to capture (default: config).")


class ZoneIn(BaseModel):
    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)


class Zones(BaseModel):
    zones: list[ZoneIn] = Field(
        max_length=MAX_ZONES, description="Rectangles, normalised 0..1 (origin top left)."
    )


class Payload(BaseModel):
    payload: str = Field(
        "", max_length=64, description="The MQTT command payload (PRESS, ON, an alert id...)."
    )


def submit(request: Request, kind: CommandKind, camera: str | None, value: Any = None) -> Accepted:
    if camera is not None:
        known_camera(request, camera)
    sink_of(request).commands.submit(Command(kind, camera=camera, value=value, origin="api"))
    return Accepted(command=kind.value, camera=camera)


def _simple(word: str, kind: CommandKind) -> None:
    def endpoint(request: Request, target: Target | None = None) -> Accepted:
        return submit(request, kind, target.camera if target else None)

    endpoint.__name__ = f"control_{word}"
    endpoint.__doc__ = f"Queue the ``{kind.value}`` command (see appliance.service.commands)."
    router.post(f"/control/{word}", status_code=202)(endpoint)


for _word, _kind in SIMPLE.items():
    _simple(_word, _kind)


@router.post("/cameras/{name}/calibrate", status_code=202)
def calibrate(request: Request, name: str, body: Calibrate | None = None) -> Accepted:
    """Capture N normal frames now and make them the camera's calibration (the loop pauses meanwhile)."""
    return submit(request, CommandKind.RECALIBRATE, name, {"frames": body.frames if body else None})


@router.post(
    "/cameras/{name}/examples", status_code=202,
    openapi_extra=UPLOAD_BODY,
)  # fmt: skip
async def examples(
    request: Request, name: str, label: Literal["failure", "ok"] = Query("failure")
) -> Accepted:
    """Upload one example picture of this camera (body: JPEG or PNG), learned as ``label``."""
    known_camera(request, name)
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"at most {MAX_UPLOAD_BYTES} bytes")
    data = bytearray()
    async for chunk in request.stream():  # never more than the limit in memory, whatever the header said
        data.extend(chunk)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"at most {MAX_UPLOAD_BYTES} bytes")
    not_a_picture = "the body is not a JPEG or PNG picture of at least 16x16 pixels"
    if image_size(data) is None:
        raise HTTPException(422, not_a_picture)
    try:  # the header first: a picture over the camera's largest frame is never decoded
        image = decode_image(data, pixel_limit(request, name), "the body")
    except ImageTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    except ValueError:
        raise HTTPException(422, not_a_picture) from None
    return submit(request, CommandKind.ADD_EXAMPLES, name, {"label": label, "images": [image]})


def pixel_limit(request: Request, name: str) -> int:
    """The pixels of camera ``name``'s largest frame: its configured size or its newest frame's."""
    sink = sink_of(request)
    source = next((c.source for c in sink.config.cameras if c.name == name), None)
    view = sink.views.get(name)
    frame = view.frame if view is not None else None
    seen = [frame.image, frame.evidence_image] if frame is not None else []
    return camera_pixel_limit(source, seen)


@router.put("/cameras/{name}/ignore_zones", status_code=202)
def set_ignore_zones(request: Request, name: str, body: Zones) -> Accepted:
    """Replace the camera's ignore zones (an empty list removes them); the detector paints them over.
    Zones without area are dropped. The zones in use are in ``GET /api/status`` (``ignore_zones``)."""
    known_camera(request, name)
    drawn = [z.model_dump() for z in body.zones if abs(z.x1 - z.x0) >= 1e-3 and abs(z.y1 - z.y0) >= 1e-3]
    try:
        zones = parse_zones(drawn)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return submit(request, CommandKind.IGNORE_ZONES, name, zones)


@router.post("/commands/{word}", status_code=202)
@router.post("/cameras/{name}/commands/{word}", status_code=202)
def mqtt_word(request: Request, word: str, body: Payload | None = None, name: str | None = None) -> Accepted:
    """Any MQTT command word with its MQTT payload, e.g. ``false_alarm`` (alert id or empty),
    ``real_failure``, ``label`` (``<frame id> ok|failure``), ``withdraw``, ``monitoring`` (ON/OFF)."""
    if word not in COMMANDS:
        raise HTTPException(404, f"unknown command {word[:32]!r}")
    sink = sink_of(request)
    topic = f"api/{name}/{word}/set" if name is not None else f"api/{word}/set"
    try:
        command = parse_command("api", topic, (body.payload if body else "").encode(), sink.cameras)
    except CommandRejectedError as exc:
        raise HTTPException(422 if name is None or name in sink.cameras else 404, str(exc)) from None
    sink.commands.submit(dataclasses.replace(command, origin="api"))
    return Accepted(command=command.kind.value, camera=command.camera)
