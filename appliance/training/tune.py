"""Choose the scoring weights, threshold and uncertainty band of a bundle on dev-eval manifests.

The evidence (anomaly z, failure-patch and global distance differences) is computed once per test frame
with the appliance's own calibration and scorer code; the weights are then searched on a small grid to
maximise the mean F1 over cameras and protocols with at most ``max_false_alarm`` false alarms, the bias
puts the decision at score 0.5, and the band is the narrowest one that holds ``band_errors`` of the
errors while sending at most ``max_uncertain`` of the frames to the cloud judge.

Optionally (``cameras``/``min_spreads``/``per_camera``) more cameras can enter the objective, the floor of the
evidence unit (``min_spread``: the calibration frames' spread is the unit, a floor stops a camera calibrated
on near-identical frames from inflating its evidence) can be searched too, and the false-alarm penalty can
be applied per camera instead of to the mean. The defaults reproduce the original two-camera tuning.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config.model import DetectorConfig
from appliance.detector import build_calibration, load_detector
from appliance.detector.scoring import KEYS, scorer_from_calibration
from appliance.evaluate import _read, read_eval_manifest
from appliance.training.devsets import TUNING_CAMERAS

logger = logging.getLogger(__name__)


def evidence(manifest_json: Path, csv_files: list[Path]) -> list[dict[str, Any]]:
    """Per (protocol, camera): evidence matrix (N, 4) and labels (N,) of the test frames."""
    # the int8 ONNX file: what the detector runs on x86 (the start-up benchmark must not pick at random here)
    detector = load_detector(DetectorConfig(model=manifest_json.parent / "layerwatch-int8.onnx", type="onnx"))
    bundle = detector.bundle
    cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def embed(path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path not in cache:
            cache[path] = detector.embed(_read(path))
        return cache[path]

    groups: list[dict[str, Any]] = []
    for csv_file in csv_files:
        by_camera: dict[str, list[Any]] = defaultdict(list)
        for row in read_eval_manifest(csv_file):
            by_camera[row.camera].append(row)
        for camera, rows in sorted(by_camera.items()):
            ok = [r for r in rows if r.role == "calibrate" and r.label == "ok"]
            fail = [r for r in rows if r.role == "calibrate" and r.label == "failure"]
            # build_calibration embeds frames; feed it the cached embeddings through the detector's embed
            cal = build_calibration(
                detector, camera, [_read(r.path) for r in ok], [_read(r.path) for r in fail]
            )
            scorer = scorer_from_calibration(bundle, cal.ok, cal.failure, cal.ok_patches)
            # the evidence is in units of this spread; kept so other min_spread floors can be tried offline
            spread = max(scorer.spread, scorer.params.min_spread)
            feats, labels = [], []
            for r in rows:
                if r.role == "test":
                    parts = scorer.components(*embed(r.path), bundle.patch_grid)
                    feats.append([parts[k] for k in KEYS])
                    labels.append(int(r.label == "failure"))
            groups.append(
                {"protocol": csv_file.stem, "camera": camera, "x": np.array(feats), "y": np.array(labels),
                 "with_failures": bool(fail), "spread": float(spread)}
            )  # fmt: skip
    return groups


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = int((pred & (y == 1)).sum())
    return 2 * tp / max(2 * tp + int((pred & (y == 0)).sum()) + int((~pred & (y == 1)).sum()), 1)


W_KEYS = ("w_anomaly", "w_failure_patch", "w_global", "w_camera_failure")
DEFAULT_MIN_SPREAD = 0.02  # ScoringParams.min_spread


def _rescaled(g: dict[str, Any], min_spread: float | None) -> np.ndarray:
    """The group's evidence as it would be with another ``min_spread`` floor (None: as computed)."""
    if min_spread is None:
        return g["x"]
    return g["x"] * g["spread"] / max(g["spread"], min_spread)


def search(
    groups: list[dict[str, Any]],
    camera_failures: bool,
    max_false_alarm: float = 0.01,
    min_spreads: tuple[float | None, ...] = (None,),
    penalty: float = 5.0,
    per_camera: bool = False,
) -> dict[str, float]:
    """Grid search of the evidence weights, the bias and optionally the ``min_spread`` floor (all evidence
    is in per-camera spread units). The objective is the mean F1 minus ``penalty`` times the false-alarm
    rate above ``max_false_alarm`` (of the mean, or with ``per_camera`` of each camera, averaged)."""
    best: tuple[float, dict[str, float]] = (-np.inf, {})
    grid = [0.0, 0.25, 0.5, 1.0, 2.0]
    for min_spread in min_spreads:
        xs = [_rescaled(g, min_spread) for g in groups]
        for w in itertools.product(grid, grid, grid, grid if camera_failures else [0.0]):
            if not any(w):
                continue
            raws = [x @ np.array(w) for x in xs]
            for bias in np.quantile(np.concatenate(raws), np.linspace(0.2, 0.99, 80)):
                f1s, fas = [], []
                for g, raw in zip(groups, raws, strict=True):
                    pred = raw >= bias
                    f1s.append(_f1(pred, g["y"]))
                    fas.append(float((pred & (g["y"] == 0)).sum()) / max(int((g["y"] == 0).sum()), 1))
                if per_camera:
                    excess = float(np.mean([max(fa - max_false_alarm, 0.0) for fa in fas]))
                else:
                    excess = max(float(np.mean(fas)) - max_false_alarm, 0.0)
                objective = float(np.mean(f1s)) - penalty * excess
                if objective > best[0]:
                    params = {**dict(zip(W_KEYS, w, strict=True)), "bias": float(bias)}
                    if min_spread is not None:
                        params["min_spread"] = float(min_spread)
                    best = (objective, params)
    logger.info("best objective %.4f with %s", best[0], best[1])
    return best[1]


def _scores(groups: list[dict[str, Any]], params: dict[str, float]) -> np.ndarray:
    w = np.array([params[k] for k in W_KEYS])
    raw = np.concatenate([_rescaled(g, params.get("min_spread")) @ w - params["bias"] for g in groups])
    return 1.0 / (1.0 + np.exp(-np.clip(params["scale"] * raw, -60, 60)))


def choose_band(scores: np.ndarray, max_uncertain: float = 0.08) -> float:
    """Half-width of the uncertain band: the widest one with at most ``max_uncertain`` of the frames in it
    (the errors sit near the threshold, so the widest allowed band holds the most of them)."""
    best = 0.0
    for band in np.linspace(0.01, 0.45, 45):
        if float((np.abs(scores - 0.5) < band).mean()) <= max_uncertain:
            best = float(band)
    return round(best, 3)


def tune_bundle(
    manifest_json: Path,
    csv_files: list[Path],
    cameras: tuple[str, ...] = TUNING_CAMERAS,
    min_spreads: tuple[float | None, ...] = (None,),
    max_false_alarm: float = 0.01,
    penalty: float = 5.0,
    per_camera: bool = False,
    max_uncertain: float = 0.08,
) -> dict[str, Any]:
    """Search weights for normal-only and for normal+failure calibration, write them into the manifest.

    The defaults are the original tuning (two cameras, mean false alarms <= 1 %); e.g. ``cameras`` with
    ``bedcam_crossprint``, ``min_spreads=(0.02, 0.08, 0.12)``, ``max_false_alarm=0.02``, ``penalty=1.0``,
    ``per_camera=True`` puts the cross-print camera into the objective (see models/README.md).
    """
    groups = [g for g in evidence(manifest_json, csv_files) if g["camera"] in cameras]
    tables = []
    for with_failures in (False, True):
        subset = [g for g in groups if g["with_failures"] == with_failures]
        if not subset:
            tables.append({})
            continue
        params = search(subset, with_failures, max_false_alarm, min_spreads, penalty, per_camera)
        w = np.array([params[k] for k in W_KEYS])
        raws = [_rescaled(g, params.get("min_spread")) @ w for g in subset]
        spread = float(np.std(np.concatenate(raws))) or 1.0
        params["scale"] = round(2.0 / spread, 4)  # sigmoid(scale * raw) spreads over [0, 1]
        tables.append({k: round(v, 4) for k, v in params.items()})
    base, with_failures_table = tables
    scores = np.concatenate(
        [
            _scores([g for g in groups if g["with_failures"] == wf], t)
            for wf, t in ((False, base), (True, with_failures_table))
            if t
        ]
    )
    band = choose_band(scores, max_uncertain)
    data = json.loads(manifest_json.read_text())
    data["scoring"] = {**data.get("scoring", {}), **base, "with_failures": with_failures_table}
    data["threshold"], data["uncertain_band"] = 0.5, band
    manifest_json.write_text(json.dumps(data, indent=2) + "\n")
    return data["scoring"] | {"uncertain_band": band}
