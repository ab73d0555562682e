"""``layerwatch eval``: the one evaluation contract for the on-device model.

The manifest is a CSV with columns ``path,label,camera,role``: ``path`` relative to the CSV's folder,
``label`` ``ok`` or ``failure``, ``role`` ``calibrate`` or ``test``. Per camera, the calibrate rows go
through exactly the calibration code the appliance uses (:func:`appliance.detector.build_calibration`),
then every test row is scored by exactly the detector the service uses (no cloud judge).

Counting: a ``failure`` verdict is a positive, ``ok`` a negative; an ``uncertain`` verdict is counted by
which side of the threshold its score is on (what the device decides alone) and also reported in
``uncertain_rate``; ``f1_if_uncertain_resolved`` counts uncertain frames as correct, as a perfect cloud
judge would make them.
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
from appliance.detector import Verdict, build_calibration, load_detector
from appliance.errors import LayerwatchError

logger = logging.getLogger(__name__)

LABELS = ("ok", "failure")
ROLES = ("calibrate", "test")


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
        with open(manifest, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"path", "label", "camera", "role"} - set(reader.fieldnames or [])
            if missing:
                raise EvalManifestError(f"{manifest}: missing columns {sorted(missing)}")
            raw = list(reader)
    except OSError as exc:
        raise EvalManifestError(f"{manifest}: cannot read: {exc}") from exc
    rows = []
    for n, item in enumerate(raw, start=2):
        label, role = item["label"].strip().lower(), item["role"].strip().lower()
        if label not in LABELS or role not in ROLES:
            raise EvalManifestError(f"{manifest}:{n}: label must be ok/failure and role calibrate/test")
        rows.append(EvalRow(manifest.parent / item["path"].strip(), label, item["camera"].strip(), role))
    if not any(r.role == "test" for r in rows):
        raise EvalManifestError(f"{manifest}: no test rows")
    return rows


def _read(path: pathlib.Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EvalManifestError(f"{path}: cannot read image")
    return image


def run_eval(manifest: pathlib.Path, model: pathlib.Path | None) -> dict[str, Any]:
    """Calibrate and score every camera of ``manifest`` with the appliance's own code; return the metrics."""
    rows = read_eval_manifest(manifest)
    detector = load_detector(DetectorConfig(model=model, type="auto"))
    by_camera: dict[str, list[EvalRow]] = defaultdict(list)
    for row in rows:
        by_camera[row.camera].append(row)
    overall = Tally()
    cameras: dict[str, Any] = {}
    start = time.monotonic()
    for camera, camera_rows in sorted(by_camera.items()):
        ok_frames = [_read(r.path) for r in camera_rows if r.role == "calibrate" and r.label == "ok"]
        failure_frames = [
            _read(r.path) for r in camera_rows if r.role == "calibrate" and r.label == "failure"
        ]
        if ok_frames:
            detector.set_calibration(build_calibration(detector, camera, ok_frames, failure_frames))
        else:
            logger.warning("camera %s has no normal calibration frames: using the uncalibrated model", camera)
            detector.set_calibration(None)
        tally = Tally()
        for row in camera_rows:
            if row.role != "test":
                continue
            detection = detector.analyse(_read(row.path))
            tally.add(row.label, detection.verdict, detection.score, detector.threshold, detection.latency_ms)
        result = tally.as_dict()
        result.update(
            calibration_ok=len(ok_frames),
            calibration_failure=len(failure_frames),
            threshold=detector.threshold,
            uncertain_band=detector.band,
        )
        cameras[camera] = result
        overall.merge(tally)
    detector.set_calibration(None)
    return {
        "manifest": str(manifest),
        "model": detector.bundle.name,
        "backend": detector.backend_name,
        "input_size": list(detector.input_size),
        "overall": overall.as_dict(),
        "cameras": cameras,
        "seconds": round(time.monotonic() - start, 1),
    }
