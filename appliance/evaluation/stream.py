"""One camera of ``layerwatch eval``: calibrate, then stream its test rows in the CSV's (time) order.

For each test row, in this order and never another:

1. the image is read (an unreadable one is counted as ``skipped``, and keeps its place in its print);
2. the frame is scored with everything the camera learned from *earlier* rows;
3. its verdict and score are counted (:class:`appliance.evaluation.metrics.Tally`) and, with ``--prints``,
   its vote goes to its print's decision engine (:class:`appliance.evaluation.prints.PrintReplay`);
4. only then, if the protocol answers it (:func:`appliance.evaluation.feedback.is_answered`), its label is
   given to the camera's learner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.config.cloud import BudgetConfig
from appliance.detector import Detection
from appliance.detector.ask_policy import AskPolicy
from appliance.evaluation.feedback import FeedbackMode, is_answered
from appliance.evaluation.manifest import LABELS, EvalRow, read_or_skip
from appliance.evaluation.metrics import Tally, ratio
from appliance.evaluation.prints import PrintReplay
from appliance.evaluation.scorer import CameraScorer

#: called after each test frame is scored and before its label may be used (tests, tools)
OnScored = Callable[[EvalRow, Detection], None]
ImageLoader = Callable[[EvalRow], np.ndarray | None]


@dataclass
class CameraRun:
    """What one camera's stream added up to."""

    tally: Tally = field(default_factory=Tally)
    skipped: int = 0
    answers_ok: int = 0
    answers_failure: int = 0
    refit_ms: list[float] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> int:
        return self.answers_ok + self.answers_failure


def evaluate_camera(
    camera: str,
    rows: list[EvalRow],
    scorer: CameraScorer,
    feedback: FeedbackMode | None = None,
    replay: PrintReplay | None = None,
    load: ImageLoader = read_or_skip,
    on_scored: OnScored | None = None,
    interval_s: float = 2.0,
) -> CameraRun:
    """Calibrate ``scorer`` on the camera's calibrate rows, stream its test rows; ``run.result`` is the
    camera's block of the JSON. With ``asked`` feedback the camera's question budget is the service's
    default one (``[cloud.budget]``), its clock the rows' ``time_s`` or ``interval_s`` per test row."""
    run = CameraRun()
    budget = BudgetConfig()
    policy = AskPolicy(budget.ask_share, budget.ask_per_hour, budget.ask_half_support)
    clock = _StreamClock(interval_s)
    calibrate = {
        label: [load(r) for r in rows if r.role == "calibrate" and r.label == label] for label in LABELS
    }
    run.skipped = sum(image is None for images in calibrate.values() for image in images)
    ok_frames = [image for image in calibrate["ok"] if image is not None]
    failure_frames = [image for image in calibrate["failure"] if image is not None]
    scorer.calibrate(camera, ok_frames, failure_frames)
    calibrated_summary = scorer.summary()
    threshold_start, band_start = scorer.threshold, scorer.band
    for row in rows:
        if row.role != "test":
            continue
        image = load(row)
        if image is None:
            run.skipped += 1
            if replay is not None:
                replay.observe(row, None)
            continue
        detection = scorer.analyse(image)
        run.tally.add(row.label, detection.verdict, detection.score, scorer.threshold, detection.latency_ms)
        if on_scored is not None:
            on_scored(row, detection)
        if replay is not None:
            replay.observe(row, detection)
        if is_answered(feedback, detection, scorer.scoring, policy, clock.tick(row.time_s)):
            # the label is read only now, after the frame was scored: an answer from the user or judge
            refit_ms = scorer.teach(row.label, detection, f"row-{row.line}")
            if refit_ms is not None:
                run.refit_ms.append(refit_ms)
                run.answers_ok += int(row.label == "ok")
                run.answers_failure += int(row.label == "failure")
    result = run.tally.as_dict()
    result.update(
        calibration_ok=len(ok_frames),
        calibration_failure=len(failure_frames),
        backend=scorer.backend_name,
        threshold=scorer.threshold,
        threshold_start=threshold_start,
        uncertain_band=round(scorer.band, 4),
        uncertain_band_start=round(band_start, 4),
        learner=calibrated_summary,
        skipped=run.skipped,
    )
    if feedback is not None:
        result.update(answer_figures(run.answers_ok, run.answers_failure, result["frames"]))
        result["learner_after"] = scorer.summary()
    if replay is not None:
        result["prints"] = replay.summary(camera)
    run.result = result
    return run


def answer_figures(answers_ok: int, answers_failure: int, frames: int) -> dict[str, Any]:
    """``answers`` (labels given after scoring), on normal frames and on failures, and their share of the
    scored frames."""
    answers = answers_ok + answers_failure
    return {
        "answers": answers,
        "answer_rate": ratio(answers, frames),
        "answers_ok": answers_ok,
        "answers_failure": answers_failure,
    }


class _StreamClock:
    """Seconds since the camera's first test row, never going back: ``time_s`` (seconds since the print's
    start) where the rows give it, each new print starting one interval after the previous row; else one
    ``interval_s`` per row."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.now = -interval_s
        self._last: float | None = None

    def tick(self, time_s: float | None) -> float:
        if time_s is None or self._last is None or time_s < self._last:
            step = self.interval_s
        else:
            step = time_s - self._last
        self._last = time_s
        self.now += step
        return self.now
