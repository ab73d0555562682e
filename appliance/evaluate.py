"""``layerwatch eval``: the one evaluation contract for the on-device model.

The manifest is a CSV with columns ``path,label,camera,role``: ``path`` relative to the CSV's folder,
``label`` ``ok`` or ``failure``, ``role`` ``calibrate`` or ``test``. Per camera, the calibrate rows go
through exactly the calibration code the appliance uses (:func:`appliance.detector.build_calibration`),
then every test row is scored by exactly the detector the service uses (no cloud judge).

Counting: a ``failure`` verdict is a positive, ``ok`` a negative; an ``uncertain`` verdict is counted by
which side of the threshold its score is on (what the device decides alone) and also reported in
``uncertain_rate``; ``f1_if_uncertain_resolved`` counts uncertain frames as correct, as a perfect cloud
judge would make them.

Forgiving where it cannot change a figure: a byte-order mark, header case and spaces, blank lines and the
labels ``good``/``normal``/``pass`` and ``fail``/``failed`` are accepted; an image that is missing or cannot
be decoded is logged and counted as ``skipped`` (per camera and overall) instead of ending the run.

``--feedback`` (:func:`run_eval` with ``feedback=True``) is the protocol of a camera that learns from its
answers: rows in the CSV's (time) order, each scored before its label may be used, and labelled only when the
appliance would have asked (a ``failure`` or ``uncertain`` verdict).
"""

from __future__ import annotations

import csv
import logging
import pathlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from appliance.config.model import DetectorConfig
from appliance.config.yolo import YoloDetectorConfig
from appliance.detector import TwoStageDetector, Verdict, build_calibration, load_detector
from appliance.detector.camera_learner import Answer
from appliance.errors import LayerwatchError

logger = logging.getLogger(__name__)

LABELS = ("ok", "failure")
ROLES = ("calibrate", "test")
# spellings other tools write for the same two labels (matched case-insensitively)
LABEL_ALIASES = {"good": "ok", "normal": "ok", "pass": "ok", "fail": "failure", "failed": "failure"}


class EvalManifestError(LayerwatchError):
    """The evaluation manifest cannot be used."""


@dataclass(frozen=True)
class EvalRow:
    path: pathlib.Path
    label: str
    camera: str
    role: str


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    uncertain: int = 0
    uncertain_errors: int = 0
    resolved_tp: int = 0
    resolved_fp: int = 0
    resolved_fn: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, label: str, verdict: Verdict, score: float, threshold: float, latency_ms: float) -> None:
        positive = score >= threshold if verdict is Verdict.UNCERTAIN else verdict is Verdict.FAILURE
        failure = label == "failure"
        if failure and positive:
            self.tp += 1
        elif failure:
            self.fn += 1
        elif positive:
            self.fp += 1
        else:
            self.tn += 1
        if verdict is Verdict.UNCERTAIN:
            self.uncertain += 1
            self.uncertain_errors += int(positive != failure)
            # a perfect judge resolves it: a failure becomes a true positive, a normal frame a true negative
            self.resolved_tp += int(failure)
        else:
            self.resolved_tp += int(failure and positive)
            self.resolved_fp += int(positive and not failure)
            self.resolved_fn += int(failure and not positive)
        self.latencies.append(latency_ms)

    def merge(self, other: Tally) -> None:
        for name in ("tp", "fp", "tn", "fn", "uncertain", "uncertain_errors", "resolved_tp", "resolved_fp"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.resolved_fn += other.resolved_fn
        self.latencies.extend(other.latencies)

    def as_dict(self) -> dict[str, Any]:
        total = self.tp + self.fp + self.tn + self.fn
        errors = self.fp + self.fn
        return {
            "frames": total,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
            "f1": _f1(self.tp, self.fp, self.fn),
            "accuracy": _ratio(self.tp + self.tn, total),
            "false_alarm_rate": _ratio(self.fp, self.fp + self.tn),
            "uncertain": self.uncertain,
            "uncertain_rate": _ratio(self.uncertain, total),
            "errors_in_uncertain": _ratio(self.uncertain_errors, errors) if errors else None,
            "f1_if_uncertain_resolved": _f1(self.resolved_tp, self.resolved_fp, self.resolved_fn),
            "latency_ms_mean": round(float(np.mean(self.latencies)), 3) if self.latencies else None,
            "latency_ms_p95": round(float(np.percentile(self.latencies, 95)), 3) if self.latencies else None,
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _f1(tp: int, fp: int, fn: int) -> float | None:
    return round(2 * tp / (2 * tp + fp + fn), 4) if (2 * tp + fp + fn) else None


def read_eval_manifest(manifest: pathlib.Path) -> list[EvalRow]:
    """Parse and check the CSV; paths are resolved against the CSV's folder."""
    try:
        # utf-8-sig: a spreadsheet's byte-order mark must not hide the first column's name
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [name.strip().lower() for name in next(reader, [])]
            missing = {"path", "label", "camera", "role"} - set(header)
            if missing:
                raise EvalManifestError(f"{manifest}: missing columns {sorted(missing)}")
            raw = [dict(zip(header, line, strict=False)) for line in reader if any(c.strip() for c in line)]
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalManifestError(f"{manifest}: cannot read: {exc}") from exc
    rows = []
    for n, item in enumerate(raw, start=2):
        label = (item.get("label") or "").strip().lower()
        label, role = LABEL_ALIASES.get(label, label), (item.get("role") or "").strip().lower()
        path = (item.get("path") or "").strip()
        if label not in LABELS or role not in ROLES or not path:
            raise EvalManifestError(
                f"{manifest}:{n}: needs a path, label ok/failure and role calibrate/test, got {item}"
            )
        rows.append(EvalRow(manifest.parent / path, label, (item.get("camera") or "").strip(), role))
    if not any(r.role == "test" for r in rows):
        raise EvalManifestError(f"{manifest}: no test rows")
    return rows


def _read(path: pathlib.Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EvalManifestError(f"{path}: cannot read image")
    return image


def _read_or_skip(path: pathlib.Path) -> np.ndarray | None:
    """The image, or None (logged) if it is missing or not an image: one bad file must not void a run of
    thousands; the count is reported as ``skipped``."""
    try:
        return _read(path)
    except EvalManifestError as exc:
        logger.warning("skipped: %s", exc)
        return None


def run_eval(
    manifest: pathlib.Path,
    model: pathlib.Path | None,
    feedback: bool = False,
    detector_config: DetectorConfig | YoloDetectorConfig | None = None,
) -> dict[str, Any]:
    """Calibrate and score every camera of ``manifest`` with the appliance's own code; return the metrics.

    ``feedback``: the test rows of each camera are streamed in the CSV's order; each is scored first, and
    only then, if its verdict was ``failure`` or ``uncertain`` (the appliance would have alerted or asked the
    judge), its label is given to the camera's learner as an answer, exactly as
    :class:`appliance.service.camera_answers.CameraAnswers` gives the user's (the frame's features, refit
    at once). Frames scored ``ok`` are never labelled. ``answers`` and
    ``answer_rate`` (answers / test rows) are added overall and per camera.

    ``detector_config`` (a ``[detector]`` table, e.g. ``type = "yolo"``) replaces the default: the prototype
    detector with ``model``. A two-stage detector adds ``box_model_share`` (frames the box model ran on).
    """
    rows = read_eval_manifest(manifest)
    detector = load_detector(detector_config or DetectorConfig(model=model, type="auto"))
    by_camera: dict[str, list[EvalRow]] = defaultdict(list)
    for row in rows:
        by_camera[row.camera].append(row)
    overall = Tally()
    cameras: dict[str, Any] = {}
    start = time.monotonic()
    skipped_total = answers_total = 0
    refit_ms: list[float] = []
    for camera, camera_rows in sorted(by_camera.items()):
        calibrate = {
            label: [_read_or_skip(r.path) for r in camera_rows if r.role == "calibrate" and r.label == label]
            for label in LABELS
        }
        skipped = sum(image is None for images in calibrate.values() for image in images)
        ok_frames = [image for image in calibrate["ok"] if image is not None]
        failure_frames = [image for image in calibrate["failure"] if image is not None]
        if ok_frames:
            detector.set_calibration(build_calibration(detector, camera, ok_frames, failure_frames))
        else:
            logger.warning("camera %s has no normal calibration frames: using the uncalibrated model", camera)
            detector.set_calibration(None)
        scoring: Any = detector.default_scoring
        calibrated_summary = scoring.learner.summary()
        tally, answers = Tally(), 0
        for n, row in enumerate(camera_rows):
            if row.role != "test":
                continue
            image = _read_or_skip(row.path)
            if image is None:
                skipped += 1
                continue
            detection = detector.analyse(image, scoring)
            tally.add(row.label, detection.verdict, detection.score, scoring.threshold, detection.latency_ms)
            if feedback and detection.verdict is not Verdict.OK and detection.features is not None:
                # the label is read only now, after the frame was scored: an answer from the user or judge
                features = detection.features
                scoring.learner.add(Answer(row.label, "user", features.phi, features.s0, frame_id=f"row-{n}"))
                refit_ms.append(scoring.learner.model.refit_ms)
                answers += 1
        result = tally.as_dict()
        result.update(
            calibration_ok=len(ok_frames),
            calibration_failure=len(failure_frames),
            threshold=scoring.threshold,
            uncertain_band=round(scoring.band, 4),
            learner=calibrated_summary,
            skipped=skipped,
        )
        if feedback:
            result.update(answers=answers, answer_rate=_ratio(answers, result["frames"]))
            result["learner_after"] = scoring.learner.summary()
        skipped_total += skipped
        answers_total += answers
        cameras[camera] = result
        overall.merge(tally)
    detector.set_calibration(None)
    summary = overall.as_dict() | {"skipped": skipped_total}
    if feedback:
        summary.update(
            answers=answers_total,
            answer_rate=_ratio(answers_total, summary["frames"]),
            refit_ms_p95=round(float(np.percentile(refit_ms, 95)), 2) if refit_ms else None,
        )
    if isinstance(detector, TwoStageDetector):
        summary["box_model_share"] = _ratio(detector.box_runs, detector.frames)
    return {
        "manifest": str(manifest),
        "model": detector.bundle.name,
        "backend": detector.backend_name,
        "input_size": list(detector.input_size),
        "protocol": "feedback" if feedback else "static",
        "overall": summary,
        "cameras": cameras,
        "seconds": round(time.monotonic() - start, 1),
    }
