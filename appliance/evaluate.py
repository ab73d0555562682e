"""``layerwatch eval``: the one evaluation contract for the on-device model.

The manifest (:mod:`appliance.evaluation.manifest`) is a CSV with columns ``path,label,camera,role`` and,
optionally, ``sequence,time_s``. Per camera, the calibrate rows go through exactly the calibration code the
appliance uses, then every test row is scored by exactly the detector the service uses (no cloud judge), in
the CSV's (time) order (:mod:`appliance.evaluation.stream`). Figures: :mod:`appliance.evaluation.metrics`
(per frame, AUROC included) and, with ``prints``, :mod:`appliance.evaluation.prints` (per print).

Protocols (``feedback``, :mod:`appliance.evaluation.feedback`): static (no test label is used), ``asked``
(a frame's label is given to the camera's learner after it is scored, if the appliance would have asked
about it) and ``all`` (every frame's label, after it is scored: the capacity protocol).

The JSON (:func:`run_eval`):

- top level: ``manifest``, ``model``, ``backend`` (runtime/variant that ran), ``input_size``, ``protocol``
  (``static``, ``feedback`` for asked, ``capacity`` for all), ``feedback`` (None, ``asked``, ``all``),
  ``overall``, ``cameras``, ``seconds``; with ``prints``: ``prints`` and ``print_list``;
- ``overall`` and each camera: ``frames tp fp tn fn precision recall f1 accuracy false_alarm_rate auroc
  uncertain uncertain_rate errors_in_uncertain f1_if_uncertain_resolved latency_ms_mean latency_ms_p95
  skipped``; with feedback also ``answers answer_rate answers_ok answers_failure``;
- ``overall`` only: ``auroc_camera_mean`` (``auroc`` there pools every camera's scores), with feedback
  ``refit_ms_p95``, for a two-stage detector ``box_model_share``;
- each camera only: ``calibration_ok calibration_failure backend threshold`` (in force at the end)
  ``threshold_start uncertain_band uncertain_band_start learner`` (after calibration), with feedback
  ``learner_after``, with prints ``prints``;
- ``prints`` (overall, each camera): ``prints failed_prints good_prints prints_caught catch_rate
  frames_to_alert_median seconds_to_alert_median false_alarms prints_with_false_alarm
  false_alarms_per_print printing_hours false_alarms_per_hour`` (and ``interval_s`` overall);
- ``print_list``: per print ``camera sequence frames failure_frames first_failure_frame
  first_failure_line caught frames_to_alert seconds_to_alert false_alarms alerts duration_s``.
"""

from __future__ import annotations

import pathlib
import time
from collections import defaultdict
from typing import Any

import numpy as np

from appliance.config.model import DecisionConfig, DetectorConfig
from appliance.config.yolo import YoloDetectorConfig
from appliance.detector import TwoStageDetector, load_detector
from appliance.evaluation.feedback import FEEDBACK_MODES, asks, feedback_mode, protocol_name
from appliance.evaluation.manifest import EvalManifestError, EvalRow, read_eval_manifest
from appliance.evaluation.metrics import Tally, auroc
from appliance.evaluation.prints import DEFAULT_INTERVAL_S, PrintReplay
from appliance.evaluation.scorer import DetectorScorer
from appliance.evaluation.stream import OnScored, answer_figures, evaluate_camera

__all__ = [
    "FEEDBACK_MODES",
    "EvalManifestError",
    "EvalRow",
    "Tally",
    "asks",
    "auroc",
    "read_eval_manifest",
    "run_eval",
]


def run_eval(
    manifest: pathlib.Path,
    model: pathlib.Path | None,
    feedback: bool | str | None = False,
    detector_config: DetectorConfig | YoloDetectorConfig | None = None,
    prints: bool = False,
    interval_s: float | None = None,
    on_scored: OnScored | None = None,
) -> dict[str, Any]:
    """Calibrate and score every camera of ``manifest`` with the appliance's own code; return the metrics.

    ``feedback``: ``None``/``False`` static; ``"asked"`` (or ``True``, as older callers pass it): a frame's
    label is given to its camera's learner right after it is scored if the appliance would have asked about
    it (:func:`appliance.evaluation.feedback.asks`); ``"all"``: every frame's label, right after it is
    scored. Both add ``answers``, ``answer_rate`` (answers / scored test rows), ``answers_ok`` and
    ``answers_failure`` overall and per camera, ``learner_after`` per camera, ``refit_ms_p95`` overall.

    ``prints``: replay each print (``sequence``) through the service's decision engine and add the
    per-print figures (``prints`` overall and per camera, ``print_list``); rows without ``time_s`` are
    ``interval_s`` seconds apart (None: the service's default analysis interval, 2 s).

    ``detector_config`` (a ``[detector]`` table, e.g. ``type = "yolo"``) replaces the default: the prototype
    detector with ``model``. A two-stage detector adds ``box_model_share`` (frames the box model ran on).
    ``on_scored(row, detection)`` is called after each test frame is scored, before its label may be used.
    """
    mode = feedback_mode(feedback)
    rows = read_eval_manifest(manifest)
    detector = load_detector(detector_config or DetectorConfig(model=model, type="auto"))
    scorer = DetectorScorer(detector)
    interval_s = DEFAULT_INTERVAL_S if interval_s is None else interval_s
    replay = PrintReplay(DecisionConfig(), interval_s) if prints else None
    by_camera: dict[str, list[EvalRow]] = defaultdict(list)
    for row in rows:
        by_camera[row.camera].append(row)
    overall = Tally()
    cameras: dict[str, Any] = {}
    start = time.monotonic()
    skipped = answers_ok = answers_failure = 0
    refit_ms: list[float] = []
    for camera, camera_rows in sorted(by_camera.items()):
        run = evaluate_camera(
            camera, camera_rows, scorer, mode, replay, on_scored=on_scored, interval_s=interval_s
        )
        cameras[camera] = run.result
        overall.merge(run.tally)
        skipped += run.skipped
        answers_ok, answers_failure = answers_ok + run.answers_ok, answers_failure + run.answers_failure
        refit_ms.extend(run.refit_ms)
    scorer.reset()
    summary = overall.as_dict() | {"skipped": skipped}
    per_camera_auroc = [c["auroc"] for c in cameras.values() if c["auroc"] is not None]
    summary["auroc_camera_mean"] = round(float(np.mean(per_camera_auroc)), 4) if per_camera_auroc else None
    if mode is not None:
        summary.update(answer_figures(answers_ok, answers_failure, summary["frames"]))
        summary["refit_ms_p95"] = round(float(np.percentile(refit_ms, 95)), 2) if refit_ms else None
    if isinstance(detector, TwoStageDetector):
        summary["box_model_share"] = (
            round(detector.box_runs / detector.frames, 4) if detector.frames else None
        )
    result: dict[str, Any] = {
        "manifest": str(manifest),
        "model": detector.bundle.name,
        "backend": detector.backend_name,
        "input_size": list(detector.input_size),
        "protocol": protocol_name(mode),
        "feedback": mode,
        "overall": summary,
        "cameras": cameras,
    }
    if replay is not None:
        result["prints"] = replay.summary() | {"interval_s": interval_s}
        result["print_list"] = replay.per_print()
    result["seconds"] = round(time.monotonic() - start, 1)
    return result
