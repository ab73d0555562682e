"""One camera's pipeline: source -> detector -> decision -> actions.

:meth:`CameraPipeline.step` takes the newest frame, scores it, resolves ``uncertain`` (counted as a
failure vote only if the config says so, until the cloud judge exists), feeds the decision engine
and hands every result to the action sinks. It never sleeps: the service decides when each camera
is due (``next_due``), faster during a verification burst.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.actions.evidence import draw_evidence, encode_jpeg
from appliance.config.model import CameraConfig
from appliance.decision import Alert, CameraState, DecisionEngine, Transition
from appliance.detector import (
    AnyDetector,
    Detection,
    Verdict,
    load_calibration,
    verdict_for,
)
from appliance.detector.ask_policy import AskPolicy, logit_of
from appliance.detector.bundle import ModelBundle
from appliance.detector.camera_learner import Answer, CameraLearner
from appliance.detector.ignore_zones import IgnoreMask, Zone, load_zones, save_zones
from appliance.errors import EndOfStreamError, SourceError
from appliance.service.camera_answers import CameraAnswers
from appliance.service.storage_health import StorageHealth
from appliance.sources import Frame, FrameSource
from appliance.sources.base import SourceState
from appliance.state_files import atomic_write_bytes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    camera: str
    frame: Frame
    detection: Detection
    is_failure: bool
    state: CameraState
    fps: float
    analysed: int
    #: the cloud judge's verdict on this frame ({failure, confidence, kind, description}), if asked
    cloud: dict[str, object] | None = None
    #: the id an answer names this frame by (``label`` command, the console's strip of recent frames)
    frame_id: str | None = None
    #: on an alert's frame: why the camera scored it so (:meth:`CameraLearner.reason`)
    reason: dict[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "camera": self.camera,
            "state": self.state.value,
            "frame": self.frame.sequence,
            "analysed": self.analysed,
            "fps": round(self.fps, 2),
            "frame_id": self.frame_id,
            **self.detection.to_json(),
        }


class ActionSink(Protocol):
    """Receives what a pipeline decides. Implementations must not block for long: anything slow
    (network, countdowns, buzzer patterns) runs on the sink's own thread.

    Optional methods, called when a sink defines them: ``start()`` once before the loop,
    ``stop()`` once at shutdown, ``on_tick(now)`` about once per second from the loop (telemetry,
    countdowns), ``on_command(command)`` for every command the loop handles.
    """

    def on_frame(self, result: FrameResult) -> None: ...

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None: ...

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None: ...


class Judge(Protocol):
    """A second opinion for frames the detector is unsure of (the cloud fallback).

    ``judge`` returns True (failure), False (ok) or None (no verdict: unreachable, over budget,
    refused, timed out); it must return within its own configured timeout. An optional
    ``describe(camera)`` returns the verdict behind the last True/False ({failure, confidence, kind,
    description}) so alerts can carry the cloud's words.
    """

    def judge(self, camera: str, frame: Frame, detection: Detection, purpose: str) -> bool | None: ...


class CameraPipeline:
    """Owns one camera's source, scoring and decision engine."""

    def __init__(
        self,
        config: CameraConfig,
        source: FrameSource,
        detector: AnyDetector,
        state_dir: Path,
        sinks: list[ActionSink],
        uncertain_counts_as_failure: bool | None = None,
        judge: Judge | None = None,
        ask_policy: AskPolicy | None = None,
    ):
        self.name = config.name
        self.config = config
        self.source = source
        self.detector = detector
        self.state_dir = state_dir
        self.sinks = sinks
        self.engine = DecisionEngine(config.name, config.decision)
        self.uncertain_is_failure = (
            config.decision.uncertain_counts_as_failure
            if uncertain_counts_as_failure is None
            else uncertain_counts_as_failure
        )
        self.judge = judge
        #: which frames this camera asks about to learn (the judge, or the user without one)
        self.ask_policy = ask_policy or AskPolicy()
        self._asks = False
        # CameraScoring (prototype) or BoxCameraScoring (yolo): the detector's own per-camera scoring
        self.scoring: Any = detector.scoring_for(None)
        self.answers = CameraAnswers(config.name, self.scoring.learner, state_dir)
        self.last_frame_id: str | None = None
        self._judge_verdict: bool | None = None
        self.analysed = 0
        self.fps = 0.0
        self.finished = False
        self.online_once = False
        self.next_due = 0.0
        self._last_analysed_at: float | None = None
        self.last_error: str | None = None
        #: state files of this camera that could not be read and were set aside (shown in the state
        #: payload as ``problems`` and sent once as a ``state_file_set_aside`` device event)
        self.problems: list[str] = []
        self.ignore = IgnoreMask(load_zones(state_dir, self.name, report=self.problems.append))
        #: held while the detector runs (the service shares one lock with its calibration worker)
        self.model_lock = threading.Lock()
        #: called with every frame read (the calibration worker takes its frames from here)
        self.on_frame_read: Callable[[Frame], None] | None = None
        self.calibrating = False  # a recalibration is queued or in progress (state payload)
        #: the camera's threshold shift in logits (cameras.sensitivity; the console's settings)
        self.sensitivity = config.sensitivity
        #: the service's storage health: evidence images that cannot be written are reported to it
        self.storage: StorageHealth | None = None
        self.reload_calibration()

    def reload_calibration(self) -> None:
        """Load the camera's calibration and stored answers and fit its learner on them."""
        fingerprint = self.detector.bundle.fingerprint()
        calibration = load_calibration(self.state_dir, self.name, fingerprint, report=self.problems.append)
        if calibration is not None:
            self.problems = [p for p in self.problems if not p.startswith(f"calibration of {self.name} ")]
        bundle = self.detector.bundle
        # phi of the prototype detector: its global embedding; a box model's rows vary in number
        dim = int(bundle.prototypes["ok"].shape[1]) if isinstance(bundle, ModelBundle) else None
        stored = CameraLearner.load(
            self.state_dir, self.name, fingerprint, report=self.problems.append, feature_dim=dim
        )
        self.scoring = self.detector.scoring_for(calibration, stored)
        self.answers.learner = self.scoring.learner
        self.answers.learner.camera = self.name
        self.scoring.ignore = self.ignore
        logger.info(
            "camera %s: %s, learner %s, threshold %.3f, uncertain band %.3f",
            self.name,
            calibration.summary if calibration else "not calibrated (generic model)",
            self.scoring.learner.summary(),
            self.scoring.threshold,
            self.scoring.band,
        )

    def answer(self, label: str, alert_id: str | None = None, frame_id: str | None = None) -> int:
        """A user's answer: the frames of an alert (None: the newest) or one recent frame are ``label``."""
        if frame_id is not None:
            return self.answers.label_frames([frame_id], label, "user")
        return self.answers.answer_alert(alert_id, label, "user")

    def withdraw(self, key: str) -> int:
        """Take back the answers given for this answer id or frame id."""
        return self.answers.withdraw(key)

    def print_ended(self, completed: bool) -> int:
        """The linked printer's job ended (completed or not): what the camera learns from it."""
        return self.answers.print_ended(completed)

    def set_ignore_zones(self, zones: tuple[Zone, ...]) -> None:
        """Store the camera's ignore zones and score the next frame with them."""
        try:
            save_zones(self.state_dir, self.name, zones)
        except OSError as exc:  # still used until the restart
            logger.error("camera %s: cannot store the ignore zones: %s", self.name, exc)
        self.ignore = IgnoreMask(zones)
        self.scoring.ignore = self.ignore
        logger.info("camera %s: %d ignore zone(s)", self.name, len(zones))

    def add_examples(self, images: list[np.ndarray], label: str) -> int:
        """Uploaded pictures of this camera (``label`` ok or failure) become answers of its learner."""
        answers = []
        for image in images:
            with self.model_lock:  # shared with the calibration worker
                features = self.detector.analyse(image, self.scoring).features
            if features is not None:
                # each its own frame id: the learner replaces an answer given again for the same frame id
                upload_id = f"upload-{secrets.token_hex(4)}"
                answers.append(Answer(label, "user", features.phi, features.s0, frame_id=upload_id))
        if answers:
            self.answers.learner.add(answers)
            self.answers._save()
        logger.info("camera %s: %d uploaded %s example(s) learned", self.name, len(answers), label)
        return len(answers)

    @property
    def threshold(self) -> float:
        """The failure threshold at the camera's sensitivity: ``sigmoid(logit(threshold) - sensitivity)``."""
        base = min(max(float(self.scoring.threshold), 1e-6), 1 - 1e-6)
        return 1.0 / (1.0 + math.exp(self.sensitivity - math.log(base / (1 - base))))

    def sensitised(self, detection: Detection) -> Detection:
        """The detector's verdict at the camera's sensitivity (unchanged at 0)."""
        if not self.sensitivity:
            return detection
        verdict = verdict_for(detection.score, self.threshold, float(self.scoring.band))
        return replace(detection, verdict=verdict)

    @property
    def state(self) -> CameraState:
        return self.engine.state

    def emit(self, transition: Transition | None, detail: dict[str, object]) -> None:
        if transition is None:
            return
        logger.info("camera %s: %s -> %s", self.name, transition.previous.value, transition.state.value)
        for sink in self.sinks:
            sink.on_transition(self.name, transition, detail)

    def step(self, now: float, read_timeout_s: float | None = None) -> FrameResult | None:
        """Analyse the newest frame. Camera trouble becomes the ``camera_offline`` state; other
        errors propagate to the service's error counter."""
        try:
            frame = self.source.read(timeout_s=read_timeout_s)
        except EndOfStreamError:
            self.finished = True
            logger.info("camera %s: end of stream", self.name)
            return None
        except SourceError as exc:
            self.last_error = str(exc)
            self.emit(self.engine.camera_lost(), {"error": str(exc)})
            return None
        self.online_once = True
        self.emit(self.engine.camera_back(now), {})
        if self.on_frame_read is not None:
            self.on_frame_read(frame)
        with self.model_lock:
            detection = self.detector.analyse(frame.image, self.scoring)
        detection = self.sensitised(detection)
        self._asks = self._asks_to_learn(detection, now)
        is_failure, cloud = self.resolve(frame, detection)
        self.last_frame_id = self.answers.observe(frame.sequence, detection.features, frame.image, is_failure)
        if self._asks and self.judge is None and detection.verdict != Verdict.FAILURE:
            self.answers.ask(self.last_frame_id, detection.score)  # a question for the user
        if self._judge_verdict is not None:
            # the judge's verdict is an answer: the learner is told what the cloud saw in this frame
            label = "failure" if self._judge_verdict else "ok"
            self.answers.label_frames([self.last_frame_id], label, "judge")
        transition = self.engine.observe(is_failure, detection.score, now)
        self._count(now)
        result = FrameResult(
            self.name, frame, detection, is_failure, self.engine.state, self.fps, self.analysed, cloud,
            self.last_frame_id,
        )  # fmt: skip
        for sink in self.sinks:
            sink.on_frame(result)
        if transition is not None:
            self.emit(transition, {"score": round(detection.score, 4)})
            if transition.alert is not None:
                self.answers.on_alert(transition.alert.id)
                features = detection.features
                if features is not None:  # why, for the alert: the labelled frames it resembles
                    reason = self.scoring.learner.reason(features.phi, features.s0)
                    result = dataclasses.replace(result, reason=reason)
                self._raise_alert(transition.alert, result)
            elif transition.state == CameraState.WATCHING:
                self.answers.on_watching()
        return result

    def resolve(self, frame: Frame, detection: Detection) -> tuple[bool, dict[str, object] | None]:
        """The frame's vote and the judge's verdict behind it, if any: the detector's verdict, with
        ``uncertain`` frames (and, during a verification burst, frames the detector alone cannot
        confirm) put to the judge if one is configured; without a verdict from it,
        ``uncertain_counts_as_failure`` decides."""
        purpose = None
        self._judge_verdict = None
        if self.judge is not None and getattr(self.judge, "mode", "uncertain") == "always":
            purpose = "always"  # cloud.mode = "always": every analysed frame is put to the judge
        elif detection.verdict == Verdict.UNCERTAIN:
            purpose = "uncertain"
        elif detection.verdict == Verdict.OK and self.engine.burst_needs_every_frame():
            purpose = "verify"
        elif self._asks:
            purpose = "learn"  # the learner is unsure of it and the camera's question budget allows
        if purpose is not None and self.judge is not None:
            verdict = self.judge.judge(self.name, frame, detection, purpose)
            if verdict is not None:
                if self._verdict_teaches(purpose, detection, verdict):
                    self._judge_verdict = verdict
                describe = getattr(self.judge, "describe", None)
                return verdict, describe(self.name) if describe is not None else None
        if detection.verdict == Verdict.UNCERTAIN:
            return self.uncertain_is_failure, None
        return detection.verdict == Verdict.FAILURE, None

    def _asks_to_learn(self, detection: Detection, now: float) -> bool:
        """Whether this frame is one the camera asks about to learn (:mod:`appliance.detector.ask_policy`):
        called for every analysed frame, so the budget's credit follows the analysis rate."""
        if detection.features is None:
            return False
        relative = logit_of(detection.score) - logit_of(self.scoring.threshold)
        labels = sum(self.scoring.learner.counts().values())
        return self.ask_policy.asks(relative, labels, now)

    @staticmethod
    def _verdict_teaches(purpose: str, detection: Detection, verdict: bool) -> bool:
        """Whether the judge's verdict becomes an answer for the camera's learner. With
        ``cloud.mode = "always"`` every frame is judged: a verdict that only repeats a confident
        local one adds nothing but a refit and a write per frame, so it is learned only when the
        frame was uncertain or the judge disagrees; uncertain and burst frames always teach."""
        if purpose != "always" or detection.verdict == Verdict.UNCERTAIN:
            return True
        return verdict != (detection.verdict == Verdict.FAILURE)

    def _count(self, now: float) -> None:
        self.analysed += 1
        if self._last_analysed_at is not None and now > self._last_analysed_at:
            instant = 1.0 / (now - self._last_analysed_at)
            self.fps = instant if self.fps == 0 else 0.8 * self.fps + 0.2 * instant
        self._last_analysed_at = now

    def _raise_alert(self, alert: Alert, result: FrameResult) -> None:
        caption = f"{self.name}: print failure, score {result.detection.score:.2f}"
        evidence = encode_jpeg(draw_evidence(result.frame.evidence_image, result.detection, caption))
        folder = self.state_dir / "cameras" / self.name / "alerts"
        try:  # atomic: a full disk leaves no partial JPEG (the alert itself goes out regardless)
            atomic_write_bytes(folder / f"{alert.id}-{alert.repeat}.jpg", evidence)
            if self.storage is not None:
                self.storage.ok("evidence")
        except OSError as exc:
            logger.warning("camera %s: cannot keep evidence image: %s", self.name, exc)
            if self.storage is not None:
                self.storage.failed("evidence", exc)
        if alert.repeat:  # the same failure still seen after cooldown_s, nobody answered: a reminder
            logger.warning(
                "camera %s: reminder %d of alert %s: failure still seen, unanswered (score %.2f, %d/%d)",
                self.name, alert.repeat, alert.id, alert.score, alert.votes, alert.window,
            )  # fmt: skip
        else:
            logger.warning(
                "camera %s: PRINT FAILURE confirmed (alert %s, score %.2f, %d/%d votes, burst %d/%d)",
                self.name, alert.id, alert.score,
                alert.votes, alert.window, alert.burst_agree, alert.burst_frames,
            )  # fmt: skip
        for sink in self.sinks:
            sink.on_alert(self.name, alert, result, evidence)

    def state_payload(self) -> dict[str, object]:
        alert = self.engine.last_alert
        status = self.source.status
        return {
            "state": self.engine.state.value,
            "camera_status": status.state.value,
            # what is wrong with the camera now (None while it delivers frames)
            "error": None if status.state == SourceState.ONLINE else status.last_error or self.last_error,
            "fps": round(self.fps, 2),
            "analysed": self.analysed,
            "calibrated": self.scoring.calibration is not None,
            "calibration": self.scoring.calibration.summary if self.scoring.calibration else None,
            "ignore_zones": [z.to_json() for z in self.ignore.zones],
            "frame_id": self.last_frame_id,
            # recent frames the camera asks the user about (no judge): answer with label/set
            "questions": self.answers.open_questions(),
            "learner": self.scoring.learner.summary(),
            "problems": list(self.problems) + (self.storage.messages() if self.storage else []),
            "storage": self.storage.state() if self.storage else "ok",
            "calibrating": self.calibrating,
            "sensitivity": self.sensitivity,
            "threshold": round(self.threshold, 4),
            "backend": self.detector.backend_name,
            "last_alert": alert.id if alert else None,
            "alert_active": self.engine.alert_active(),
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
