"""Job records: one per print (or per span of monitoring without a linked printer).

All records live in one JSON list, ``<state_dir>/history/jobs.json``, newest last, at most
``history.max_jobs`` of them, written with :func:`appliance.state_files.atomic_write_text` after every
change of a job (start, state, alert, end, timelapse). A file that cannot be read is set aside
(``jobs.json.bad-<time>``) and the history starts empty. A job still open at start-up (the service
stopped or crashed during it) is closed with outcome ``interrupted``.

Outcomes: ``completed``, ``cancelled``, ``failed`` (the printer's error state), ``paused_by_layerwatch``
(Layerwatch paused it and it did not complete), ``interrupted`` (the service stopped during it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

OUTCOMES = ("completed", "cancelled", "failed", "paused_by_layerwatch", "interrupted")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def safe_name(text: str, limit: int = 48) -> str:
    """A file-system safe part of a name: ``My Benchy (2).gcode`` -> ``My_Benchy_2_.gcode``."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "job"
    return cleaned[:limit]


def job_id_for(name: str, started: float) -> str:
    """Sortable job id and folder name: ``20261202T161500_benchy.gcode``."""
    stamp = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}_{safe_name(name)}"


@dataclass
class JobRecord:
    id: str
    name: str  # the printer's file name, or "monitoring"
    source: str  # "printer" or "monitoring"
    cameras: list[str]
    started: float  # wall clock, seconds
    ended: float | None = None
    outcome: str | None = None
    state: str | None = None  # the printer's last state word
    progress: float | None = None  # percent
    alerts: list[str] = field(default_factory=list)
    paused_by_layerwatch: bool = False
    frames: dict[str, int] = field(default_factory=dict)  # camera -> frames saved
    timelapses: dict[str, str] = field(default_factory=dict)  # camera -> MP4 path

    @property
    def active(self) -> bool:
        return self.ended is None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = iso(self.started)
        data["ended_at"] = iso(self.ended) if self.ended is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(record.id, str) or not isinstance(record.started, int | float):
            raise TypeError("id must be a string and started a number")
        return record


class JobStore:
    """The job records of this appliance (thread-safe; every change is written at once)."""

    def __init__(self, path: Path, max_jobs: int = 500):
        self.path = path
        self.max_jobs = max_jobs
        self._lock = threading.Lock()
        self.jobs: list[JobRecord] = self._load()

    def _load(self) -> list[JobRecord]:
        if not self.path.exists():
            return []
        try:
            raw = json.loads(self.path.read_text())
            if not isinstance(raw, list):
                raise TypeError("not a list of jobs")
            return [JobRecord.from_json(item) for item in raw]
        except (OSError, ValueError, TypeError) as exc:
            set_aside(self.path, str(exc))
            return []

    def close_interrupted(self, now: float) -> list[JobRecord]:
        """Jobs left open by a previous run: ended now as ``interrupted``."""
        closed = [job for job in self.jobs if job.active]
        for job in closed:
            job.ended, job.outcome = now, "interrupted"
        if closed:
            logger.info("history: %d job(s) left open by the last run closed as interrupted", len(closed))
            self.save()
        return closed

    def add(self, job: JobRecord) -> None:
        with self._lock:
            self.jobs.append(job)
            del self.jobs[: max(0, len(self.jobs) - self.max_jobs)]
        self.save()

    def save(self) -> None:
        with self._lock:
            text = json.dumps([job.to_json() for job in self.jobs], indent=1)
        try:
            atomic_write_text(self.path, text)
        except OSError as exc:  # a full disk must not stop the service: the records stay in memory
            logger.warning("history: cannot write %s: %s", self.path, exc)

    def last(self) -> JobRecord | None:
        with self._lock:
            return self.jobs[-1] if self.jobs else None
