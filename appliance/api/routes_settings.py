"""The settings a user changes often, from the console (:mod:`appliance.config.settings_file`).

* ``GET /api/settings`` (a read): the values in force (per camera: sensitivity and the threshold it makes),
  what ``<state_dir>/settings.json`` holds, and which settings this configuration has (no ``[printer]``: no
  action, no watching only while printing);
* ``POST /api/settings/change`` (control): change some (one method per path, so ``Allow`` is exact); the
  whole configuration with the change is validated as
  ``layerwatch check-config`` does (422 naming the key), then the file is replaced atomically and the
  change applied at once by the analysis loop (a ``settings`` command): the camera's next frame is scored
  at the new sensitivity, the next alert counts down the new time, the printer link takes the new action.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.api.access import control_access
from appliance.api.routes_status import known_camera, sink_of
from appliance.config.model import LayerwatchConfig
from appliance.config.settings_file import read_settings, settings_path, write_settings
from appliance.service.commands import Command, CommandKind

read_router = APIRouter(prefix="/api", tags=["settings"])  # app.py adds the read dependency
router = APIRouter(prefix="/api", tags=["settings"], dependencies=[Depends(control_access)],
                   responses={401: {"description": "Missing or wrong token"}})  # fmt: skip


class SettingsIn(BaseModel):
    """Only the settings given change (none: nothing happens); unknown keys and wrong types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    camera: str | None = Field(None, description="The camera whose sensitivity changes; null: every camera.")
    sensitivity: float | None = Field(
        None, ge=-3, le=3, description="Threshold shift in logits: + alerts sooner."
    )
    countdown_s: float | None = Field(
        None, ge=0, le=3600, description="Seconds between an alert and the action."
    )
    action: Literal["pause", "cancel", "none"] | None = Field(None, description="What the printer is asked.")
    watch_only_while_printing: bool | None = Field(None, description="Pause monitoring while not printing.")


def current(request: Request) -> dict[str, Any]:
    sink = sink_of(request)
    config = sink.config
    printer = config.printer
    cameras = {}
    for name in sink.cameras:
        state = sink.context.state_of(name)
        cameras[name] = {"sensitivity": state.get("sensitivity", 0.0), "threshold": state.get("threshold")}
    return {
        "file": str(settings_path(sink.context.state_dir)),
        "stored": read_settings(sink.context.state_dir),
        "cameras": cameras,
        "countdown_s": config.alarm.countdown_s,
        "printer": None if printer is None else {
            "action": printer.action, "watch_only_while_printing": printer.watch_only_while_printing,
        },
    }  # fmt: skip


@read_router.get("/settings")
def get_settings(request: Request) -> dict[str, Any]:
    """The settings in force and what the settings file holds."""
    return current(request)


@router.post(
    "/settings/change",
    responses={400: {"description": "Malformed body"}, 404: {"description": "Unknown camera"},
               409: {"description": "No [printer] configured"},
               422: {"description": "Invalid setting"}, 507: {"description": "Cannot write the file"}},
)  # fmt: skip
def put_settings(request: Request, body: SettingsIn) -> dict[str, Any]:
    """Change settings: validated with the whole configuration, stored atomically, applied at once."""
    sink = sink_of(request)
    changes = body.model_dump(exclude_none=True, exclude={"camera"})
    if body.camera is not None:
        known_camera(request, body.camera)
    if not changes:
        return {"applied": {}, "file": str(settings_path(sink.context.state_dir))}
    printer_keys = {"action", "watch_only_while_printing"} & set(changes)
    if printer_keys and sink.config.printer is None:
        raise HTTPException(409, f"{', '.join(sorted(printer_keys))}: no [printer] is configured")
    tree = sink.config.model_dump()
    stored = read_settings(sink.context.state_dir)
    if "countdown_s" in changes:
        tree["alarm"]["countdown_s"] = stored.setdefault("alarm", {})["countdown_s"] = changes["countdown_s"]
    for key in printer_keys:
        tree["printer"][key] = stored.setdefault("printer", {})[key] = changes[key]
    if "sensitivity" in changes:
        for index, name in enumerate(sink.cameras):
            if body.camera in (None, name):
                tree["cameras"][index]["sensitivity"] = changes["sensitivity"]
                camera_settings = stored.setdefault("cameras", {}).setdefault(name, {})
                camera_settings["sensitivity"] = changes["sensitivity"]
    try:
        LayerwatchConfig.model_validate(tree)  # as check-config would read the file with these settings
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise HTTPException(422, "; ".join(problems)) from None
    try:
        write_settings(sink.context.state_dir, stored)
    except OSError as exc:
        raise HTTPException(507, f"cannot store the settings: {exc.strerror}") from None
    sink.commands.submit(Command(CommandKind.SETTINGS, camera=body.camera, value=changes, origin="api"))
    return {"applied": changes, "file": str(settings_path(sink.context.state_dir))}
