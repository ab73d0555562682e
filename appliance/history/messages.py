"""The job notifications: what printer-realtime-bridge told its users, as
:class:`~appliance.actions.dispatcher.Notification` of kind ``job``.

Each carries ``fields.event`` (``job_started``, ``job_state``, ``job_error``, ``job_progress``,
``job_photo``, ``job_ended``, ``job_timelapse``), ``fields.job`` (the job id) and what the event is about
(``file``, ``printer_state``, ``progress``, ``outcome``; ``video`` is the MP4 path of a timelapse).
They are handed to every alert channel through the event hub (``notification`` events, see
:meth:`appliance.actions.dispatcher.AlertDispatcher.on_hub_event`); they never count against a
channel's alert rate limit, and an alert waiting in an outbox goes out before them.
"""

from __future__ import annotations

import uuid
from typing import Any

from appliance.actions.dispatcher import Notification
from appliance.history.jobs import JobRecord


def job_message(
    event: str,
    job: JobRecord,
    camera: str | None,
    title: str,
    description: str,
    image: bytes | None = None,
    **extra: Any,
) -> Notification:
    fields: dict[str, Any] = {"event": event, "job": job.id, "file": job.name, **extra}
    if job.progress is not None and "progress" not in fields:
        fields["progress"] = job.progress
    return Notification(
        key=f"job-{uuid.uuid4().hex[:12]}",
        kind="job",
        camera=camera,
        title=title,
        description=description,
        fields=fields,
        image=image,
    )


def started(job: JobRecord, camera: str | None) -> Notification:
    if job.source == "monitoring":
        return job_message(
            "job_started", job, camera, f"{camera}: monitoring on", "A job began: monitoring was switched on."
        )
    return job_message(
        "job_started",
        job,
        camera,
        f"Print started: {job.name}",
        f"Job {job.name} started (state {job.state}).",
        printer_state=job.state,
    )


def state_changed(
    job: JobRecord | None, camera: str | None, previous: str, state: str, file: str | None
) -> Notification:
    record = job or JobRecord(id="-", name=file or "-", source="printer", cameras=[], started=0)
    return job_message(
        "job_state",
        record,
        camera,
        f"Printer state: {state}",
        f"{previous} -> {state}" + (f" ({file})" if file else ""),
        printer_state=state,
        previous_state=previous,
    )


def error(job: JobRecord | None, camera: str | None, state: str, file: str | None) -> Notification:
    record = job or JobRecord(id="-", name=file or "-", source="printer", cameras=[], started=0)
    return job_message(
        "job_error",
        record,
        camera,
        f"Printer error: {state}",
        f"The printer reports {state!r}" + (f" during {file}." if file else "."),
        printer_state=state,
    )


def progress(job: JobRecord, camera: str | None, percent: float) -> Notification:
    return job_message(
        "job_progress",
        job,
        camera,
        f"{job.name}: {percent:.0f} %",
        f"Progress {percent:.0f} %.",
        progress=percent,
    )


def photo(job: JobRecord, camera: str, jpeg: bytes) -> Notification:
    done = f", {job.progress:.0f} %" if job.progress is not None else ""
    return job_message(
        "job_photo", job, camera, f"{camera}: {job.name}{done}", "Photo while printing.", image=jpeg
    )


def ended(job: JobRecord, camera: str | None, jpeg: bytes | None) -> Notification:
    words = (job.outcome or "ended").replace("_", " ")
    minutes = ((job.ended or job.started) - job.started) / 60
    return job_message(
        "job_ended",
        job,
        camera,
        f"Print {words}: {job.name}",
        f"Job {job.name} {words} after {minutes:.0f} min; {len(job.alerts)} alert(s).",
        image=jpeg,
        outcome=job.outcome,
    )


def timelapse(job: JobRecord, camera: str, info: dict[str, Any]) -> Notification:
    return job_message(
        "job_timelapse",
        job,
        camera,
        f"Timelapse: {job.name}",
        f"{info['frames']} frames, {info['duration_s']:.1f} s at {info['fps']} fps, "
        f"{info['size_bytes'] / 1e6:.1f} MB.",
        video=info["path"],
        size_bytes=info["size_bytes"],
    )
