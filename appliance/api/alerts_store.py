"""The alert history the console shows: persisted in the state directory, bounded, survives restarts.

``<state_dir>/api/alerts.json`` holds the newest ``api.alerts_kept`` alerts (newest last), each
``{id, camera, time, created, score, votes, window, repeats, cloud_verdict, acknowledged, answer,
answer_ids, learner, closed, cause, telemetry, image}``; ``image`` is the evidence JPEG the pipeline kept
(``cameras/<camera>/alerts/<id>-0.jpg``, relative to the state directory), None for a printer telemetry
alert (``cause`` and ``telemetry``: the signal, its value and limit, say what was seen). ``answer`` is
``false_alarm`` / ``real_failure``, ``answer_ids`` the camera learner's ids of that answer (what
``withdraw`` takes back), ``learner`` the learner's counts after it; ``closed`` says why the alert left the
console's panel (``acknowledged``, ``false_alarm``, ``print_ended_unanswered``, ``print_ended``,
``replaced``). An alert dropped from the history takes its evidence images with it.
Every change is written atomically (:mod:`appliance.state_files`); an unreadable file is set aside and
the history starts empty.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from appliance.actions.dispatcher import iso_now
from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

ALERTS_FILE = Path("api") / "alerts.json"


class AlertsStore:
    def __init__(self, state_dir: Path, keep: int):
        self.state_dir = state_dir
        self.path = state_dir / ALERTS_FILE
        self.keep = keep
        self._lock = threading.Lock()
        self._alerts: list[dict[str, Any]] = self._load()

    def _load(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
            if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
                raise ValueError("not an object with an 'alerts' list")
            alerts = [a for a in data["alerts"] if isinstance(a, dict) and isinstance(a.get("id"), str)]
            return alerts[-self.keep :]
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            set_aside(self.path, f"unreadable alert history: {exc}")
            return []

    def _save(self) -> None:
        try:
            atomic_write_text(self.path, json.dumps({"version": 1, "alerts": self._alerts}, indent=1))
        except OSError as exc:  # kept in memory; written with the next change
            logger.error("cannot store the alert history in %s: %s", self.path, exc)

    def record(self, camera: str, fields: dict[str, Any], image: bool = True) -> dict[str, Any]:
        """A new alert, or a reminder of one already listed (counted in ``repeats``); ``image``: the
        pipeline kept an evidence JPEG for it."""
        alert_id = str(fields["id"])
        with self._lock:
            for entry in self._alerts:
                if entry["id"] == alert_id:
                    entry["repeats"] = int(entry.get("repeats", 0)) + 1
                    entry["score"] = fields.get("score", entry.get("score"))
                    self._save()
                    return dict(entry)
            entry = {
                "id": alert_id,
                "camera": camera,
                "time": iso_now(),
                "created": round(time.time(), 3),
                "repeats": 0,
                "acknowledged": None,
                "answer": None,
                "answer_ids": [],
                "closed": None,
                "image": f"cameras/{camera}/alerts/{alert_id}-0.jpg" if image else None,
                **{k: fields.get(k) for k in ("score", "votes", "window", "cloud_verdict")},
                **{k: fields[k] for k in ("cause", "telemetry", "reason") if fields.get(k) is not None},
            }
            self._alerts.append(entry)
            dropped, self._alerts = self._alerts[: -self.keep], self._alerts[-self.keep :]
            self._save()
        for old in dropped:
            self._delete_images(old)
        return dict(entry)

    def _delete_images(self, entry: dict[str, Any]) -> None:
        folder = self.state_dir / "cameras" / str(entry.get("camera")) / "alerts"
        for image in folder.glob(f"{entry['id']}-*.jpg"):
            try:
                image.unlink()
            except OSError as exc:
                logger.warning("cannot delete old evidence %s: %s", image, exc)

    def update(self, camera: str | None, alert_id: str | None, **changes: Any) -> list[dict[str, Any]]:
        """Set ``changes`` on an alert (None: the newest of ``camera``, or of every camera if None too)."""
        changed = []
        with self._lock:
            for entry in reversed(self._alerts):
                if camera not in (None, entry["camera"]):
                    continue
                if alert_id is None or entry["id"] == alert_id:
                    entry.update(changes)
                    changed.append(dict(entry))
                    break
            if changed:
                self._save()
        return changed

    def withdrawn(self, camera: str | None, key: str, learner: Any) -> list[dict[str, Any]]:
        """The answer of the alert with id ``key``, or whose answer ids include ``key``, was taken back."""
        changed = []
        with self._lock:
            for entry in self._alerts:
                if camera not in (None, entry["camera"]) or entry.get("answer") is None:
                    continue
                if key == entry["id"] or key in (entry.get("answer_ids") or []):
                    entry.update(answer=None, answer_ids=[], learner=learner, withdrawn=iso_now())
                    changed.append(dict(entry))
            if changed:
                self._save()
        return changed

    def list(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            items = [dict(a) for a in reversed(self._alerts)]
        return items[:limit] if limit else items

    def get(self, alert_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((dict(a) for a in self._alerts if a["id"] == alert_id), None)

    def image_path(self, alert_id: str) -> Path | None:
        entry = self.get(alert_id)
        if entry is None:
            return None
        if not entry.get("image"):
            return None
        path = self.state_dir / str(entry["image"])
        return path if path.is_file() else None
