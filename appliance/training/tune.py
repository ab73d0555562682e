"""Choose the scoring weights, threshold and uncertainty band on dev-eval manifests, jointly for several
dev models.

The evidence (:data:`appliance.detector.scoring.KEYS`) is computed once per test frame with the appliance's
own calibration and scorer code. The weights are then searched on a small grid, the decision threshold
(the bias) over quantiles of the combined evidence, to maximise the mean over (dev model, camera) of
``F1 - penalty * max(false alarms - max_false_alarm, 0)``: every camera's false alarms count, not their
mean, and the cross-print camera (a new print after calibration) is in the objective.

Why several dev models: the shipped model is trained on all the data and gets the table chosen on the
dev models. A table tuned on one dev model fitted that model's geometry and did not carry over to a model
trained with another seed (measured: cross-print false alarms 3 % -> 31 %); tuned on two seeds at once it
held on both. Each table gets its own band (the two tables' scores spread differently): the widest one
that sends at most ``max_uncertain`` of that protocol's dev frames to the judge.
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

logger = logging.getLogger(__name__)

# the evidence each protocol may use (the others keep weight 0)
NORMAL_ONLY_KEYS = ("head", "head_cell", "likeness", "anomaly", "global")
WITH_FAILURES_KEYS = ("head", "head_cell", "camera_likeness", "likeness", "camera_failure")
GRID = (0.0, 0.25, 0.5, 1.0, 2.0)


def evidence(manifest_json: Path, csv_files: list[Path]) -> list[dict[str, Any]]:
    """Per (protocol, camera): evidence matrix (N, len(KEYS)) and labels (N,) of the test frames."""
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
            cal = build_calibration(
                detector, camera, [_read(r.path) for r in ok], [_read(r.path) for r in fail]
            )
            scorer = scorer_from_calibration(bundle, cal.ok, cal.failure, cal.ok_patches)
            feats, labels = [], []
            for r in rows:
                if r.role == "test":
                    parts = scorer.components(*embed(r.path), bundle.patch_grid)
                    feats.append([parts[k] for k in KEYS])
                    labels.append(int(r.label == "failure"))
            groups.append(
                {"model": str(manifest_json), "protocol": csv_file.stem, "camera": camera,
                 "x": np.array(feats), "y": np.array(labels), "with_failures": bool(fail)}
            )  # fmt: skip
    return groups


def rates(scores: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1, false-alarm rate) of ``scores >= t`` for every threshold ``t``."""
    pred = scores[:, None] >= thresholds[None, :]
    pos = (y == 1)[:, None]
    tp, fp, fn = (pred & pos).sum(0), (pred & ~pos).sum(0), (~pred & pos).sum(0)
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1), fp / max(int((y == 0).sum()), 1)


def search(
    groups: list[dict[str, Any]],
    keys: tuple[str, ...],
    max_false_alarm: float = 0.01,
    penalty: float = 3.0,
) -> dict[str, float]:
    """Grid search of the weights of ``keys`` and the bias (see the module docstring for the objective)."""
    columns = [KEYS.index(k) for k in keys]
    xs = [g["x"][:, columns] for g in groups]
    best: tuple[float, dict[str, float]] = (-np.inf, {})
    for w in itertools.product(GRID, repeat=len(keys)):
        if not any(w):
            continue
        raws = [x @ np.array(w) for x in xs]
        thresholds = np.quantile(np.concatenate(raws), np.linspace(0.2, 0.995, 160))
        objective = np.zeros(len(thresholds))
        for g, raw in zip(groups, raws, strict=True):
            f1, fa = rates(raw, g["y"], thresholds)
            objective += f1 - penalty * np.maximum(fa - max_false_alarm, 0.0)
        i = int(objective.argmax())
        if objective[i] / len(groups) > best[0]:
            params = {f"w_{k}": 0.0 for k in KEYS} | {f"w_{k}": v for k, v in zip(keys, w, strict=True)}
            best = (float(objective[i] / len(groups)), params | {"bias": float(thresholds[i])})
    logger.info("best objective %.4f with %s", best[0], {k: v for k, v in best[1].items() if v})
    return best[1]


def _raw(groups: list[dict[str, Any]], params: dict[str, float]) -> list[np.ndarray]:
    w = np.array([params[f"w_{k}"] for k in KEYS])
    return [g["x"] @ w - params["bias"] for g in groups]


def choose_band(scores: np.ndarray, max_uncertain: float = 0.08) -> float:
    """Half-width of the uncertain band: the widest one with at most ``max_uncertain`` of the frames in it
    (the errors sit near the threshold, so the widest allowed band holds the most of them)."""
    best = 0.0
    for band in np.linspace(0.01, 0.45, 45):
        if float((np.abs(scores - 0.5) < band).mean()) <= max_uncertain:
            best = float(band)
    return round(best, 3)


def tune_bundles(
    runs: list[tuple[Path, list[Path]]],
    validate: tuple[Path, ...] = (),
    max_false_alarm: float = 0.01,
    penalty: float = 3.0,
    max_uncertain: float = 0.08,
) -> dict[str, Any]:
    """Search one table for normal-only and one for normal+failure calibration over all dev models at once
    (``runs``: each dev model's manifest with the dev-eval CSVs of the fold it was held out of; every camera
    of those CSVs counts); write it, the threshold 0.5 and the band into every manifest, and into the
    ``validate`` manifests (dev models of a fold the table is not chosen on, measured out of sample)."""
    manifests = [manifest for manifest, _ in runs]
    groups = [g for manifest, csv_files in runs for g in evidence(manifest, csv_files)]
    tables: dict[bool, dict[str, float]] = {}
    for with_failures, keys in ((False, NORMAL_ONLY_KEYS), (True, WITH_FAILURES_KEYS)):
        subset = [g for g in groups if g["with_failures"] == with_failures]
        if not subset:
            continue
        params = search(subset, keys, max_false_alarm, penalty)
        raw = np.concatenate(_raw(subset, params))
        params["scale"] = 2.0 / (float(np.std(raw)) or 1.0)  # sigmoid(scale * raw) spreads over [0, 1]
        scores = 1.0 / (1.0 + np.exp(-np.clip(params["scale"] * raw, -60, 60)))
        params["uncertain_band"] = choose_band(scores, max_uncertain)
        tables[with_failures] = {k: round(v, 4) for k, v in params.items()}
    # the model's band (used without a calibration, and by older code) is the normal-only table's
    band = tables.get(False, tables.get(True, {})).get("uncertain_band", 0.1)
    scoring: dict[str, Any] = {}
    for manifest_json in [*manifests, *validate]:
        data = json.loads(manifest_json.read_text())
        scoring = {**data.get("scoring", {}), **tables.get(False, {}), "with_failures": tables.get(True, {})}
        data["scoring"], data["threshold"], data["uncertain_band"] = scoring, 0.5, band
        manifest_json.write_text(json.dumps(data, indent=2) + "\n")
    return scoring | {"uncertain_band": band}
