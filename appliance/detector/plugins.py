"""Which detector the ``[detector]`` table selects, and the two-stage prototype + box model detector.

* ``type = "auto" | "onnx" | "litert"`` (the default): the prototype detector
  (:mod:`appliance.detector.prototype_detector`);
* the same with a ``[detector.second_opinion]`` table: :class:`TwoStageDetector`, the prototype model on
  every frame and the box model only on the frames it finds suspect (verdict ``failure`` or
  ``uncertain``); there the box model's verdict, score and boxes decide;
* ``type = "yolo"``: :class:`appliance.detector.yolo_detector.YoloDetector` on every frame.

:func:`build_calibration` calibrates either kind with its own features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from appliance.config.model import DetectorConfig
from appliance.config.yolo import YoloDetectorConfig
from appliance.detector import prototype_detector as prototype
from appliance.detector.base import Detection, Verdict
from appliance.detector.bundle import ModelBundle, load_bundle
from appliance.detector.calibration import CameraCalibration
from appliance.detector.prototype_detector import CameraScoring, PrototypeDetector
from appliance.detector.runtime import EmbeddingBackend
from appliance.detector.yolo_detector import YoloDetector, load_yolo_detector
from appliance.errors import ModelFormatError

AnyDetector = PrototypeDetector | YoloDetector


class TwoStageDetector(PrototypeDetector):
    """The prototype detector whose suspect frames get the box model's second opinion.

    The camera's learner, calibration and answers are the prototype model's; the box model runs with its
    configured threshold. ``role`` (``[detector.second_opinion] role``): ``boxes`` keeps the prototype
    model's score and verdict and adds the box model's boxes as evidence; ``decides`` takes the box
    model's score and verdict. ``box_runs`` counts the frames it ran on (of ``frames``)."""

    def __init__(
        self,
        bundle: ModelBundle,
        backend: EmbeddingBackend,
        config: DetectorConfig,
        box: YoloDetector,
        role: str = "boxes",
        warm_up: bool = True,
    ):
        self.box = box
        self.role = role
        self.frames = 0
        self.box_runs = 0
        super().__init__(bundle, backend, config, warm_up=warm_up)
        self.backend_name = f"{backend.name}+{box.backend_name}"

    def analyse(self, image_bgr: np.ndarray, camera: CameraScoring | None = None) -> Detection:
        first = super().analyse(image_bgr, camera)
        self.frames += 1
        if first.verdict is Verdict.OK:
            return first
        self.box_runs += 1
        second = self.box.analyse(image_bgr)
        if self.role == "boxes":
            return dataclasses.replace(
                first, boxes=second.boxes, latency_ms=first.latency_ms + second.latency_ms
            )
        return dataclasses.replace(
            first,
            score=second.score,
            verdict=second.verdict,
            boxes=second.boxes,
            latency_ms=first.latency_ms + second.latency_ms,
        )


def load_detector(
    config: DetectorConfig | YoloDetectorConfig, cache_dir: Path | None = None, warm_up: bool = True
) -> AnyDetector:
    """The configured detector, loaded and warmed up (``cache_dir``: the state directory, where the
    prototype detector remembers the backend it runs). ``warm_up=False`` skips the embedding model's two
    runs on a black frame: the service does, because its first real frame is analysed at once and
    READY waits for it (measured on the arm64 image's root under qemu-user emulation: 2.0-2.4 s a run,
    two of them in the service's start)."""
    if isinstance(config, YoloDetectorConfig):
        return load_yolo_detector(config)
    if config.second_opinion is None:
        return prototype.load_detector(config, cache_dir, warm_up=warm_up)
    box = load_yolo_detector(config.second_opinion)
    bundle = load_bundle(config.model)
    if "ok" not in bundle.prototypes or "failure" not in bundle.prototypes:
        raise ModelFormatError(f"model {bundle.name}: prototypes need arrays 'ok' and 'failure'")
    backend = prototype.select_backend(bundle, config, cache_dir)
    return TwoStageDetector(bundle, backend, config, box, role=config.second_opinion.role, warm_up=warm_up)


def build_calibration(
    detector: AnyDetector,
    camera: str,
    ok_frames: Sequence[np.ndarray],
    failure_frames: Sequence[np.ndarray] = (),
) -> CameraCalibration:
    """A camera's calibration with the detector's own features (embeddings or failure boxes)."""
    if isinstance(detector, YoloDetector):
        return detector.build_calibration(camera, ok_frames, failure_frames)
    return prototype.build_calibration(detector, camera, ok_frames, failure_frames)
