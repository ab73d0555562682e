"""Print review (the console's Prints tab): the jobs of ``[history]`` with their outcome, frames on a
timeline, the timelapse to play in the page, and labelling a finished print (:mod:`appliance.history.review`).

* ``GET /api/jobs``, ``GET /api/jobs/{job}/frames?camera=``, ``GET /api/jobs/{job}/frames/{name}``,
  ``GET /api/jobs/{job}/timelapse.mp4?camera=`` (byte ranges, so the page can seek): reads;
* ``POST /api/jobs/{job}/label`` ``{"camera", "failed_from": <capture time> | null}`` (control): "it failed
  from here" (the frames before are normal, from it on failures) or, with ``failed_from`` null, "it was
  fine". The frames are decoded here and handed to the camera's learner as examples (the
  ``add_examples`` command), at most ``SAMPLE`` per label.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from appliance.api.access import control_access
from appliance.api.routes_status import known_camera, sink_of
from appliance.history import review
from appliance.service.commands import Command, CommandKind

read_router = APIRouter(prefix="/api", tags=["history"])  # app.py adds the read dependency
router = APIRouter(prefix="/api", tags=["history"], dependencies=[Depends(control_access)],
                   responses={401: {"description": "Missing or wrong token"}})  # fmt: skip
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown job, camera or frame"}}


def _images(request: Request) -> Any:
    sink = sink_of(request)
    return sink.config.history.images_path(sink.context.state_dir)


def _job(request: Request, job_id: str) -> dict[str, Any]:
    job = review.find_job(sink_of(request).context.state_dir, job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


def _camera(request: Request, job: dict[str, Any], camera: str | None) -> str:
    cameras = [c for c in job.get("cameras") or [] if isinstance(c, str)]
    name = camera or (cameras[0] if cameras else "")
    if name not in cameras:
        raise HTTPException(404, "that camera did not watch this job")
    return known_camera(request, name)


@read_router.get("/jobs", responses=NOT_FOUND)
def jobs(request: Request, limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    """The print jobs, newest first: name, outcome, times, progress, alerts, frames saved, and which
    cameras have a timelapse."""
    images = _images(request)
    out = []
    for job in review.list_jobs(sink_of(request).context.state_dir, limit):
        cameras = [c for c in job.get("cameras") or [] if isinstance(c, str)]
        made = [c for c in cameras if review.timelapse_path(images, c, job["id"]) is not None]
        out.append({**job, "timelapse_cameras": made})
    return out


@read_router.get("/jobs/{job_id}/frames", responses=NOT_FOUND)
def job_frames(request: Request, job_id: str, camera: str | None = None) -> list[dict[str, Any]]:
    """The job's saved frames of one camera (default: its first), in capture order: name and time."""
    job = _job(request, job_id)
    return review.timeline(_images(request), _camera(request, job, camera), job_id)


@read_router.get("/jobs/{job_id}/frames/{name}", response_class=FileResponse,
                 responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}}})  # fmt: skip
def job_frame(request: Request, job_id: str, name: str, camera: str | None = None) -> FileResponse:
    """One saved frame of the job."""
    job = _job(request, job_id)
    path = review.frame_path(_images(request), _camera(request, job, camera), job_id, name)
    if path is None:
        raise HTTPException(404, "no such frame")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@read_router.get("/jobs/{job_id}/timelapse.mp4", response_class=FileResponse,
                 responses={**NOT_FOUND, 200: {"content": {"video/mp4": {}}}})  # fmt: skip
def job_timelapse(request: Request, job_id: str, camera: str | None = None) -> FileResponse:
    """The job's timelapse (H.264 MP4; byte ranges served)."""
    job = _job(request, job_id)
    path = review.timelapse_path(_images(request), _camera(request, job, camera), job_id)
    if path is None:
        raise HTTPException(404, "no timelapse for this job")
    return FileResponse(path, media_type="video/mp4")


class JobLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    camera: str | None = Field(None, description="The camera (default: the job's first).")
    failed_from: float | None = Field(
        None, description="Capture time (UTC seconds) the print failed from; null: it was fine."
    )


LABEL_ANSWERS = {**NOT_FOUND, 400: {"description": "Malformed body"}, 409: {"description": "No frames"}}


@router.post("/jobs/{job_id}/label", status_code=202, responses=LABEL_ANSWERS)
def label_job(request: Request, job_id: str, body: JobLabel) -> dict[str, Any]:
    """Teach the camera from a finished print: "it failed from here" or "it was fine"."""
    job = _job(request, job_id)
    camera = _camera(request, job, body.camera)
    normal, failed = review.labelled_frames(_images(request), camera, job_id, body.failed_from)
    if not normal and not failed:
        raise HTTPException(409, "this job has no saved frames to learn from")
    sink = sink_of(request)
    counts = {}
    for label, paths in (("ok", normal), ("failure", failed)):
        images = [image for p in paths if (image := cv2.imread(str(p), cv2.IMREAD_COLOR)) is not None]
        images = [i for i in images if isinstance(i, np.ndarray) and min(i.shape[:2]) >= 16]
        if images:
            sink.commands.submit(Command(CommandKind.ADD_EXAMPLES, camera=camera,
                                         value={"label": label, "images": images}, origin="api"))  # fmt: skip
        counts[label] = len(images)
    return {
        "accepted": True,
        "camera": camera,
        "job": job_id,
        "ok": counts["ok"],
        "failure": counts["failure"],
    }
