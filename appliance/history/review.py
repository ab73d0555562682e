"""Reading the print history back for review (the console's Prints tab): the job records, each job's saved
frames on a timeline, its timelapse, and which frames a label of the whole print teaches.

Read-only and thread-safe: the records come from ``history/jobs.json`` (written atomically by
:class:`~appliance.history.jobs.JobStore`), the frames from ``<images_dir>/<camera>/<job>/`` (named by
their capture time, :func:`~appliance.history.frames.frame_name`). Nothing here trusts a name from outside:
a job is looked up among the records, a frame among the job's own files.

Labelling a finished print: "it failed from here" makes the frames before that moment normal examples and
the frames from it on failures; "it was fine" makes them all normal. At most ``SAMPLE`` frames per label,
evenly spread over the span (the learner keeps at most 120 per label and prunes near-duplicates; a
two-hour print has hundreds of saved frames), so one label costs the analysis loop well under a second.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from appliance.history.frames import job_folder, job_frames
from appliance.history.timelapse import FILENAME as TIMELAPSE

SAMPLE = 12
_NAME = re.compile(r"^(\d{8}T\d{6})_(\d{6})_[A-Za-z0-9._-]+\.jpg$")


def jobs_file(state_dir: Path) -> Path:
    return state_dir / "history" / "jobs.json"


def list_jobs(state_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The job records, newest first (an unreadable file: none; the history sink sets it aside)."""
    try:
        jobs = json.loads(jobs_file(state_dir).read_text())
    except (OSError, ValueError):
        return []
    jobs = (
        [j for j in jobs if isinstance(j, dict) and isinstance(j.get("id"), str)]
        if isinstance(jobs, list)
        else []
    )
    jobs.reverse()
    return jobs[:limit] if limit else jobs


def find_job(state_dir: Path, job_id: str) -> dict[str, Any] | None:
    return next((j for j in list_jobs(state_dir) if j["id"] == job_id), None)


def frame_time(path: Path) -> float | None:
    """The capture time a saved frame's name says (UTC seconds), None for another name."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    moment = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return moment.timestamp() + int(match.group(2)) / 1e6


def timeline(images_dir: Path, camera: str, job_id: str) -> list[dict[str, Any]]:
    """The job's saved frames of ``camera``, in capture order: ``{"name", "time"}``."""
    frames = []
    for path in job_frames(job_folder(images_dir, camera, job_id)):
        at = frame_time(path)
        if at is not None:
            frames.append({"name": path.name, "time": round(at, 3)})
    return frames


def frame_path(images_dir: Path, camera: str, job_id: str, name: str) -> Path | None:
    """A saved frame of the job, only if the job folder holds a file of that name."""
    folder = job_folder(images_dir, camera, job_id)
    return next((p for p in job_frames(folder) if p.name == name), None)


def timelapse_path(images_dir: Path, camera: str, job_id: str) -> Path | None:
    path = job_folder(images_dir, camera, job_id) / TIMELAPSE
    return path if path.is_file() else None


def spread(items: list[Path], count: int = SAMPLE) -> list[Path]:
    """At most ``count`` of ``items``, evenly spaced, the first and last included."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def labelled_frames(
    images_dir: Path, camera: str, job_id: str, failed_from: float | None
) -> tuple[list[Path], list[Path]]:
    """(normal, failure) frames a label of the job teaches: with ``failed_from`` (a capture time) the
    frames before it are normal and those from it on failures; without, every frame is normal."""
    frames = job_frames(job_folder(images_dir, camera, job_id))
    timed = [(frame_time(p), p) for p in frames]
    ordered = [(t, p) for t, p in timed if t is not None]
    if failed_from is None:
        return spread([p for _, p in ordered]), []
    edge = failed_from - 0.001  # the page has the times rounded to milliseconds
    before = [p for t, p in ordered if t < edge]
    after = [p for t, p in ordered if t >= edge]
    return spread(before), spread(after)
