"""The ``yolo`` detector plugin: a YOLOv5 / YOLOv8 / YOLO11 export (ONNX or LiteRT) as the failure model.

Per frame: letterbox as Ultralytics does (:mod:`appliance.detector.letterbox`), run the export through the
runtime seam (:func:`appliance.detector.runtime.open_tensor_backend`), decode its layout and run NMS
(:mod:`appliance.detector.yolo_decode`), keep the boxes of the configured failure classes. The failure
score is the highest confidence of a failure box outside the camera's ignore regions; the boxes (frame
coordinates, normalised) are the evidence.

Per camera (:class:`BoxLearner`, stored like the prototype learner in ``cameras/<name>/learner.npz``):
a frame answered "false alarm" makes its failure boxes ignore regions for that camera (a later "real
failure" answer on an overlapping box lifts them), and the normal calibration frames set the camera's
confidence floor: its threshold is at least their top failure-box confidence + ``floor_margin``.
The learner's features of a frame (``FrameFeatures.phi``) are its ``max_boxes`` failure boxes as
(x0, y0, x1, y1, confidence) rows, zero-padded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.config.yolo import YoloDetectorConfig
from appliance.detector.base import Detection, Detector, EvidenceBox, verdict_for
from appliance.detector.bundle import default_models_dir
from appliance.detector.calibration import CameraCalibration, new_calibration
from appliance.detector.camera_learner import Answer, CameraLearner
from appliance.detector.learner import FrameFeatures, LearnerFit
from appliance.detector.letterbox import letterbox
from appliance.detector.runtime import open_tensor_backend
from appliance.detector.yolo_decode import decode, detect_layout, failure_class_ids, read_metadata
from appliance.errors import DetectorError, ModelFormatError

logger = logging.getLogger(__name__)

SHIPPED_BOX_MODEL = "layerwatch-boxes-int8.onnx"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (M, 4) against (K, 4) x0, y0, x1, y1 boxes -> (M, K)."""
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _rows(phi: np.ndarray) -> np.ndarray:
    """A frame's features -> its (K, 5) non-empty box rows."""
    rows = np.asarray(phi, np.float32).reshape(-1, 5)
    return rows[rows[:, 4] > 0]


class BoxLearner(CameraLearner):
    """A camera's answers for a box model: ignore regions from "false alarm" frames and a confidence
    floor from the normal calibration frames (see the module docstring). ``refit`` is a few numpy ops."""

    def __init__(self, camera: str, fingerprint: str, config: YoloDetectorConfig):
        super().__init__(camera, fingerprint)
        self.config = config
        self.ignore = np.zeros((0, 4), np.float32)
        self.floor = 0.0

    def refit(self) -> LearnerFit:
        start = time.perf_counter()
        ok = [_rows(a.phi) for a in self.answers if a.label == "ok" and a.source != "calibration"]
        real = [_rows(a.phi) for a in self.answers if a.label == "failure"]
        ignore = np.concatenate([r[:, :4] for r in ok]) if ok else np.zeros((0, 4), np.float32)
        real_boxes = np.concatenate([r[:, :4] for r in real]) if real else np.zeros((0, 4), np.float32)
        if len(ignore) and len(real_boxes):
            ignore = ignore[box_iou(ignore, real_boxes).max(1) < self.config.ignore_iou]
        self.ignore = ignore
        calibration_ok = [a for a in self.answers if a.label == "ok" and a.source == "calibration"]
        top = [float(_rows(a.phi)[:, 4].max(initial=0.0)) for a in calibration_ok]
        floor = max(top, default=0.0) + self.config.floor_margin if top else 0.0
        fails = [float(_rows(a.phi)[:, 4].max(initial=0.0)) for a in self.answers if a.label == "failure"
                 and a.source == "calibration"]  # fmt: skip
        seen = [f for f in fails if f > 0]
        if seen:  # failure frames of the camera the model sees must stay over the floor
            floor = min(floor, min(seen) - 1e-3)
        self.floor = max(floor, 0.0)
        counts = self.counts()
        self.model = LearnerFit(
            band_logit=0.0,
            examples=sum(counts.values()),
            failures=counts.get("failure", 0),
            refit_ms=(time.perf_counter() - start) * 1000,
            mode="boxes",
        )
        return self.model

    def kept(self, rows: np.ndarray) -> np.ndarray:
        """The box rows (K, 5) outside every ignore region."""
        if not len(rows) or not len(self.ignore):
            return rows
        return rows[box_iou(rows[:, :4], self.ignore).max(1) < self.config.ignore_iou]

    def summary(self) -> dict[str, object]:
        return {**super().summary(), "ignore_regions": len(self.ignore), "floor": round(self.floor, 4)}


@dataclass
class BoxCameraScoring:
    """What one camera is scored with: its :class:`BoxLearner`; the threshold is the configured one or
    the camera's floor, whichever is higher."""

    learner: BoxLearner
    calibration: CameraCalibration | None
    base_threshold: float
    band: float

    @property
    def threshold(self) -> float:
        return max(self.base_threshold, self.learner.floor)


class YoloDetector(Detector):
    """A YOLO export on ONNX Runtime or LiteRT; see the module docstring."""

    def __init__(self, config: YoloDetectorConfig, path: Path):
        self.config = config
        self.path = path
        fmt = (
            config.backend if config.backend != "auto" else ("litert" if path.suffix == ".tflite" else "onnx")
        )
        self.backend = open_tensor_backend(path, fmt, config.threads)
        self.metadata = read_metadata(path, self.backend.metadata)
        names = self.metadata.get("names")
        self.names: dict[int, str] | None = (
            dict(enumerate(config.class_names)) if config.class_names else names  # type: ignore[assignment]
        )
        shape = self.backend.input_shape
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise ModelFormatError(
                f"{path}: input shape {shape} is not an image (1, 3, H, W) or (1, H, W, 3)"
            )
        self.channels_first = shape[1] == 3
        self.input_size = self._input_size(shape)
        self.layout = detect_layout(
            self.backend.output_shapes, len(self.names) if self.names else None, self.metadata, config.layout
        )
        classes = self.layout.classes or (len(self.names) if self.names else 0)
        self.failure_ids = failure_class_ids(list(config.failure_classes), self.names, classes, path.name)
        quantized = any(t in path.name for t in ("int8", "uint8")) or self.backend.input_dtype == np.int8
        precision = "int8" if quantized else str(self.backend.input_dtype)
        self.backend_name = f"{self.backend.runtime}/{precision}"
        digest = hashlib.sha256(path.name.encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(1 << 20))
        self._fingerprint = "yolo-" + digest.hexdigest()[:16]
        self.default_scoring = self.scoring_for(None)
        self.analyse(np.zeros((self.input_size[1], self.input_size[0], 3), np.uint8))
        logger.info(
            "box model %s on %s: layout %s, %d classes, input %dx%d, failure classes %s",
            path.name, self.backend_name, self.layout.kind, classes, *self.input_size, self.failure_ids,
        )  # fmt: skip

    def _input_size(self, shape: tuple[int, ...]) -> tuple[int, int]:
        height, width = (shape[2], shape[3]) if self.channels_first else (shape[1], shape[2])
        if height > 0 and width > 0:
            return int(width), int(height)
        if self.config.input_size:
            return self.config.input_size
        imgsz = self.metadata.get("imgsz")
        if isinstance(imgsz, list | tuple) and len(imgsz) == 2:
            return int(imgsz[1]), int(imgsz[0])  # Ultralytics writes (height, width)
        if isinstance(imgsz, int):
            return imgsz, imgsz
        raise ModelFormatError(
            f"{self.path}: input shape {shape} is dynamic and the export has no 'imgsz' metadata; "
            "set detector.input_size"
        )

    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def bundle(self) -> YoloDetector:
        """What the pipeline asks for the model fingerprint (``detector.bundle.fingerprint()``)."""
        return self

    def boxes(self, image_bgr: np.ndarray) -> np.ndarray:
        """The frame's failure boxes (K, 5): x0, y0, x1, y1 normalised, confidence; best first."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise DetectorError(f"expected a BGR image (h, w, 3), got shape {image_bgr.shape}")
        canvas, placed = letterbox(image_bgr[..., ::-1], self.input_size)
        tensor = canvas.astype(np.float32) / 255.0
        tensor = tensor.transpose(2, 0, 1)[np.newaxis] if self.channels_first else tensor[np.newaxis]
        outputs = self.backend.run(np.ascontiguousarray(tensor))
        found = decode(outputs[self.layout.output], self.layout, self.input_size, self.config.confidence,
                       self.config.iou)  # fmt: skip
        wanted = np.isin(found.classes, self.failure_ids)
        xyxy = placed.to_frame(found.xyxy[wanted])
        rows = np.concatenate([xyxy, found.scores[wanted, None]], 1)[: self.config.max_boxes]
        return rows.astype(np.float32)

    def features(self, rows: np.ndarray) -> FrameFeatures:
        phi = np.zeros((self.config.max_boxes, 5), np.float32)
        phi[: len(rows)] = rows
        top = float(rows[:, 4].max(initial=0.0))
        return FrameFeatures(phi.ravel(), float(np.log(max(top, 1e-6) / max(1 - top, 1e-6))))

    def analyse(self, image_bgr: np.ndarray, camera: BoxCameraScoring | None = None) -> Detection:
        start = time.perf_counter()
        camera = camera or self.default_scoring
        rows = self.boxes(image_bgr)
        kept = camera.learner.kept(rows)
        score = float(kept[:, 4].max(initial=0.0))
        return Detection(
            score=score,
            verdict=verdict_for(score, camera.threshold, camera.band),
            boxes=tuple(EvidenceBox(*(float(v) for v in row)) for row in kept),
            latency_ms=(time.perf_counter() - start) * 1000,
            features=self.features(rows),
        )

    # -- per camera ------------------------------------------------------------------------------
    def scoring_for(
        self, calibration: CameraCalibration | None, answers: CameraLearner | None = None
    ) -> BoxCameraScoring:
        """A camera's learner from its calibration frames and stored ``answers`` (None: none)."""
        if calibration is not None and calibration.model_fingerprint != self.fingerprint():
            raise DetectorError(f"calibration of {calibration.camera} was made with another model")
        camera = calibration.camera if calibration is not None else (answers.camera if answers else "")
        learner = BoxLearner(camera, self.fingerprint(), self.config)
        if answers is not None:
            learner.add(answers.stored_answers(), refit=False)
        if calibration is not None:
            pairs = [("ok", f) for f in calibration.ok] + [("failure", f) for f in calibration.failure]
            learner.add(
                [Answer(label, "calibration", phi, 0.0, frame_id=f"calibration-{n}", time=calibration.created)
                 for n, (label, phi) in enumerate(pairs)], refit=False,
            )  # fmt: skip
        learner.refit()
        return BoxCameraScoring(learner, calibration, self.config.threshold, self.config.uncertain_band)

    def set_calibration(self, calibration: CameraCalibration | None) -> None:
        self.default_scoring = self.scoring_for(calibration)

    def build_calibration(
        self, camera: str, ok_frames: Sequence[np.ndarray], failure_frames: Sequence[np.ndarray] = ()
    ) -> CameraCalibration:
        """The camera's calibration: each frame's failure boxes (the features) as its "embedding"."""
        dim = self.config.max_boxes * 5

        def stack(frames: Sequence[np.ndarray]) -> np.ndarray:
            rows = [self.features(self.boxes(f)).phi for f in frames]
            return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)

        ok, failure = stack(ok_frames), stack(failure_frames)
        return new_calibration(camera, self.fingerprint(), ok, failure, ok[:, None], failure[:, None])


def load_yolo_detector(config: YoloDetectorConfig) -> YoloDetector:
    """Open the configured export (default: the shipped box model)."""
    path = config.model or default_models_dir() / SHIPPED_BOX_MODEL
    if not path.is_file():
        raise ModelFormatError(f"detector.model: {path} does not exist (a YOLO .onnx or .tflite export)")
    return YoloDetector(config, path)
