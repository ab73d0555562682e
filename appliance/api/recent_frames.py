"""The console's strip of recent analysed frames: each with its score and verdict, the ones the detector
was unsure of (``uncertain``) and the ones the camera asks about (its ``questions``, from the ask policy)
marked, each answerable ``ok`` / ``failure`` / withdraw in one tap (the ``label`` and ``withdraw``
commands, by frame id).

Called on the analysis thread, :meth:`RecentFrames.add` keeps only a small resized copy of the frame
(``THUMB`` pixels, no encoding) and the numbers; the JPEG is made on the server's thread when the page
asks for it. The newest ``KEPT`` frames per camera, and up to ``KEPT`` older unsure ones (the ones the
camera asks about are among them), all newer than what the camera's answers still keep
(:data:`appliance.service.camera_answers.RECENT_FRAMES`), so every frame listed can still be answered.
Questions come first in the list.
The service's ``answer`` / ``answer_withdrawn`` events mark the frames they name.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from appliance.service.pipeline import FrameResult

KEPT = 24
THUMB = (128, 96)


@dataclass
class Kept:
    frame_id: str
    sequence: int
    time: float
    score: float
    verdict: str
    small: np.ndarray
    answer: str | None = None  # ok | failure
    answer_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "frame_id": self.frame_id, "sequence": self.sequence, "time": round(self.time, 3),
            "score": round(self.score, 4), "verdict": self.verdict, "unsure": self.verdict == "uncertain",
            "answer": self.answer, "answer_ids": list(self.answer_ids),
        }  # fmt: skip


class RecentFrames:
    def __init__(self, cameras: list[str]):
        self._frames: dict[str, deque[Kept]] = {name: deque(maxlen=KEPT) for name in cameras}
        self._unsure: dict[str, deque[Kept]] = {name: deque(maxlen=KEPT) for name in cameras}
        self._lock = threading.Lock()

    def add(self, result: FrameResult) -> None:
        if result.frame_id is None or result.detection.features is None:
            return  # a frame the camera's answers do not keep cannot be answered
        small = cv2.resize(result.frame.image, THUMB, interpolation=cv2.INTER_AREA)
        kept = Kept(result.frame_id, result.frame.sequence, time.time(), float(result.detection.score),
                    result.detection.verdict.value, small)  # fmt: skip
        with self._lock:
            frames = self._frames.setdefault(result.camera, deque(maxlen=KEPT))
            if len(frames) == KEPT and frames[0].verdict == "uncertain":  # leaving the newest: kept apart
                self._unsure.setdefault(result.camera, deque(maxlen=KEPT)).append(frames[0])
            frames.append(kept)

    def _all(self, camera: str) -> list[Kept]:
        return [*self._unsure.get(camera, ()), *self._frames.get(camera, ())]

    def _find(self, camera: str, frame_id: str) -> Kept | None:
        return next((k for k in self._all(camera) if k.frame_id == frame_id), None)

    def answered(self, payload: dict[str, Any]) -> bool:
        """An ``answer`` event naming a frame: the frame shows its label and answer ids."""
        frame_id = payload.get("frame")
        if not frame_id or not payload.get("learned"):
            return False
        with self._lock:
            kept = self._find(str(payload.get("camera")), str(frame_id))
            if kept is None:
                return False
            kept.answer, kept.answer_ids = str(payload.get("label")), list(payload.get("answer_ids") or [])
        return True

    def withdrawn(self, payload: dict[str, Any]) -> bool:
        key = str(payload.get("key"))
        changed = False
        with self._lock:
            for kept in self._all(str(payload.get("camera"))):
                if key == kept.frame_id or key in kept.answer_ids:
                    kept.answer, kept.answer_ids, changed = None, [], True
        return changed

    def list(self, camera: str, questions: list[str]) -> list[dict[str, Any]]:
        """The camera's questions first, then newest first; ``question``: the camera asks about it."""
        with self._lock:
            kept = self._all(camera)
        listed = [{**k.to_json(), "question": k.frame_id in questions} for k in reversed(kept)]
        return sorted(listed, key=lambda f: not f["question"])  # stable: newest first within each

    def thumbnail(self, camera: str, frame_id: str) -> bytes | None:
        with self._lock:
            kept = self._find(camera, frame_id)
            small = None if kept is None else kept.small
        if small is None:
            return None
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return data.tobytes() if ok else None
