"""Answers for one camera: turn what the user, the cloud judge and the printer say into labelled frames.

The pipeline hands every analysed frame to :meth:`CameraAnswers.observe`; the last ``RECENT_FRAMES`` are
kept in memory (their learner features and a 64 x 48 thumbnail, never the full frame) under a frame id
``<run>-<sequence>`` that MQTT state and alert events carry. An answer names a frame id, or an alert (the
frames that voted failure for it), and a label; it becomes an
:class:`~appliance.detector.camera_learner.Answer` of the camera's learner, which refits at once
(milliseconds) and is saved atomically, so the very next frame is scored with it.

Where answers come from (``source``):

* ``user``: ``false_alarm`` / ``real_failure`` on an alert (MQTT, Home Assistant buttons, a long press of
  the button during an alert), ``label`` of any recent frame by its id;
* ``judge``: the cloud judge's verdict on an uncertain or burst frame;
* ``print``: a print that completed with no failure confirmed gives its last ``PRINT_OK_FRAMES`` analysed
  frames as normal examples (the tallest, most varied look of the part); a print cancelled after an alert
  gives that alert's frames as failures.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.detector.camera_learner import Answer, CameraLearner
from appliance.detector.learner import FrameFeatures

logger = logging.getLogger(__name__)

RECENT_FRAMES = 200  # frames an answer may name (about 7 minutes at the default 2 s interval)
ALERT_FRAMES = 12  # failure-voting frames kept per alert
PRINT_OK_FRAMES = 4  # late frames of a print that completed, given as normal examples
THUMBNAIL = (64, 48)


@dataclass
class RecentFrame:
    frame_id: str
    features: FrameFeatures
    small: np.ndarray  # the frame at THUMBNAIL size (BGR); JPEG-encoded only if it is answered
    voted_failure: bool

    def thumbnail(self) -> bytes:
        ok, data = cv2.imencode(".jpg", self.small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return data.tobytes() if ok else b""


class CameraAnswers:
    """Recent frames, alert frames and the learner they feed (shared with the camera's scoring)."""

    def __init__(self, camera: str, learner: CameraLearner, state_dir: Path):
        self.camera = camera
        self.learner = learner
        self.state_dir = state_dir
        self.run = secrets.token_hex(3)
        self.recent: OrderedDict[str, RecentFrame] = OrderedDict()
        #: frames the camera asked the user about (no judge), frame id -> score; gone once answered or
        #: no longer kept (:mod:`appliance.detector.ask_policy`)
        self.questions: OrderedDict[str, float] = OrderedDict()
        self.alert_frames: OrderedDict[str, list[str]] = OrderedDict()
        self._voting: deque[str] = deque(maxlen=ALERT_FRAMES)
        self._print_alerts: list[str] = []  # alerts raised since the last print ended
        #: the answer ids the last :meth:`label_frames` call gave (published on the ``answer`` event)
        self.last_answer_ids: list[str] = []

    def frame_id(self, sequence: int) -> str:
        return f"{self.run}-{sequence}"

    def observe(self, sequence: int, features: FrameFeatures | None, image: np.ndarray, voted: bool) -> str:
        """Remember an analysed frame; returns its frame id."""
        frame_id = self.frame_id(sequence)
        if features is None:
            return frame_id
        small = cv2.resize(image, THUMBNAIL, interpolation=cv2.INTER_AREA)
        self.recent[frame_id] = RecentFrame(frame_id, features, small, voted)
        while len(self.recent) > RECENT_FRAMES:
            self.recent.popitem(last=False)
        if voted:
            self._voting.append(frame_id)
        return frame_id

    def ask(self, frame_id: str, score: float) -> None:
        """Ask the user about a kept frame (its learner is unsure of it)."""
        if frame_id in self.recent:
            self.questions[frame_id] = float(score)

    def open_questions(self) -> list[dict[str, object]]:
        """The questions still answerable, oldest first: ``{"frame_id", "score"}``."""
        for frame_id in [f for f in self.questions if f not in self.recent]:
            del self.questions[frame_id]
        return [{"frame_id": f, "score": round(s, 4)} for f, s in self.questions.items()]

    def on_alert(self, alert_id: str) -> None:
        """The frames that voted failure up to this alert are its frames (for ``false_alarm`` etc.)."""
        self.alert_frames[alert_id] = list(self._voting)
        self._print_alerts.append(alert_id)
        self._voting.clear()
        while len(self.alert_frames) > 20:
            self.alert_frames.popitem(last=False)

    def on_watching(self) -> None:
        """Back to watching without an alert: the votes so far were not confirmed."""
        self._voting.clear()

    # -- answers -------------------------------------------------------------------------------------------
    def label_frames(self, frame_ids: list[str], label: str, source: str) -> int:
        """Answer these recent frames ``label``; returns how many were still kept (their answer ids are
        in :attr:`last_answer_ids`)."""
        answers = []
        self.last_answer_ids = []
        for frame_id in frame_ids:
            self.questions.pop(frame_id, None)
            recent = self.recent.get(frame_id)
            if recent is None:
                logger.warning("camera %s: frame %s is no longer kept; answer ignored", self.camera, frame_id)
                continue
            answers.append(
                Answer(label, source, recent.features.phi, recent.features.s0, frame_id, recent.thumbnail())
            )
        if answers:
            self.learner.add(answers)
            self.last_answer_ids = [a.id for a in answers]
            self._save()
            logger.info(
                "camera %s: %d frame(s) answered %s by %s; learner %s",
                self.camera, len(answers), label, source, self.learner.summary(),
            )  # fmt: skip
        return len(answers)

    def newest_alert(self) -> str | None:
        return next(reversed(self.alert_frames)) if self.alert_frames else None

    def answer_alert(self, alert_id: str | None, label: str, source: str = "user") -> int:
        """Label the frames of ``alert_id`` (None: the newest alert)."""
        if alert_id is None:
            if not self.alert_frames:
                logger.warning("camera %s: no alert to answer %s", self.camera, label)
                return 0
            alert_id = next(reversed(self.alert_frames))
        frames = self.alert_frames.get(alert_id)
        if frames is None:
            logger.warning("camera %s: unknown alert %s; answer ignored", self.camera, alert_id)
            return 0
        return self.label_frames(frames, label, source)

    def print_finished(self, completed: bool, alert_id: str | None) -> int:
        """A print ended: completed with no confirmed failure gives its late frames as normal; cancelled
        after an alert gives that alert's frames as failures."""
        if completed and alert_id is None:
            late = [f.frame_id for f in list(self.recent.values())[-PRINT_OK_FRAMES:] if not f.voted_failure]
            return self.label_frames(late, "ok", "print")
        if not completed and alert_id is not None:
            return self.answer_alert(alert_id, "failure", "print")
        return 0

    def print_ended(self, completed: bool) -> int:
        """The linked printer's job ended: :meth:`print_finished` with the newest alert of this print."""
        alert = self._print_alerts[-1] if self._print_alerts else None
        self._print_alerts.clear()
        return self.print_finished(completed, alert)

    def withdraw(self, key: str) -> int:
        """Take back the answers given for this answer id, frame id or alert id (its frames)."""
        keys = [key, *self.alert_frames.get(key, [])]
        removed = sum(self.learner.withdraw(k) for k in keys)
        if removed:
            self._save()
        return removed

    def _save(self) -> None:
        try:
            self.learner.save(self.state_dir)
        except OSError as exc:  # the answer still counts in memory; it is written with the next one
            logger.error("camera %s: cannot store the camera's answers: %s", self.camera, exc)
