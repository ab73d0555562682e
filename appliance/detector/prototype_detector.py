"""The shipped detector: an embedding network plus the camera's own learner.

Per frame: resize to the model's input size and convert BGR -> RGB (:func:`to_model_input`), run the
backend to get the global and patch embeddings; the model's generic failure heads give the frame's prior
logit and the most failure-like cell, and the camera's learner (:mod:`appliance.detector.learner`, fitted on
its calibration frames and every answer since) turns them into a failure score; the cell head's logits
spread it into a heatmap. The score becomes ``ok``/``uncertain``/``failure`` through the threshold (0.5)
and the camera's uncertain band.

``type = "auto"`` runs the first variant of the bundle that this machine can load, in the manifest's
order (logged, and reported as ``backend_name``): never the winner of a timing race, so a camera's scores
are the same at every start.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.config.model import DetectorConfig
from appliance.detector.base import Detection, Detector, verdict_for
from appliance.detector.bundle import ModelBundle, ModelVariant, load_bundle
from appliance.detector.calibration import CameraCalibration, new_calibration, stack_embeddings
from appliance.detector.camera_learner import Answer, CameraLearner
from appliance.detector.ignore_zones import IgnoreMask
from appliance.detector.learner import FrameFeatures, frame_features, sigmoid
from appliance.detector.runtime import EmbeddingBackend, open_backend
from appliance.errors import BackendUnavailableError, DetectorError, ModelFormatError
from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

BACKEND_CACHE = "backend.json"
PROTOTYPE_SCALE = 12.0  # logits per unit of cosine, for bundles without failure heads


def to_model_input(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """BGR frame of any size -> RGB uint8 (height, width, 3) at ``size`` = (width, height)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise DetectorError(f"expected a BGR image (h, w, 3), got shape {image_bgr.shape}")
    if (image_bgr.shape[1], image_bgr.shape[0]) != size:
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def _cached_choice(cache_dir: Path | None, bundle: ModelBundle) -> ModelVariant | None:
    """The variant remembered in ``backend.json``; a file that is not a JSON object with string
    ``key`` and ``file`` is set aside (the backends are then timed again and the file rewritten)."""
    if cache_dir is None:
        return None
    path = cache_dir / BACKEND_CACHE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        set_aside(path, f"unreadable backend cache: {exc}")
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("key", "file")):
        set_aside(path, "backend cache is not an object with string 'key' and 'file'")
        return None
    if data.get("key") != _cache_key(bundle):
        return None
    return next((v for v in bundle.variants if v.path.name == data.get("file")), None)


def _cache_key(bundle: ModelBundle) -> str:
    variants = ",".join(
        f"{v.path.name}:{v.path.stat().st_size if v.path.exists() else 0}" for v in bundle.variants
    )
    return f"{bundle.fingerprint()}|{variants}|{platform.machine()}|{platform.python_version()}"


def _store_choice(cache_dir: Path | None, bundle: ModelBundle, variant: ModelVariant) -> None:
    if cache_dir is None:
        return
    try:
        payload = {"key": _cache_key(bundle), "file": variant.path.name}
        atomic_write_text(cache_dir / BACKEND_CACHE, json.dumps(payload, indent=1))
    except OSError as exc:
        logger.debug("cannot cache the backend choice: %s", exc)


def select_backend(
    bundle: ModelBundle, config: DetectorConfig, cache_dir: Path | None = None
) -> EmbeddingBackend:
    """Open the variant to run: the first loadable one of the requested format, in the manifest's order.

    ``auto`` takes the first listed variant this machine can load (the int8 ONNX file, the one every figure in
    the model card is measured with) and the next only when a runtime is missing or refuses the file. It
    never picks by a start-up timing: the two int8 variants round differently, and a camera's scores must
    not depend on which runtime won a race (the hidden in-chamber camera's F1 was 0.355 with ONNX Runtime and
    0.270 with LiteRT on the same frames). The choice is kept in ``cache_dir/backend.json`` (the state
    directory) for this model, machine and Python, so later starts open the remembered file at once.
    """
    wanted = [v for v in bundle.variants if config.type in ("auto", v.format)]
    if not wanted:
        raise ModelFormatError(f"model {bundle.name} has no {config.type} variant")
    cached = _cached_choice(cache_dir, bundle) if config.type == "auto" and len(wanted) > 1 else None
    if cached is not None and cached is wanted[0]:
        try:
            backend = open_backend(cached.path, cached.format, cached.precision, config.threads)
            logger.info("backend %s (as at an earlier start-up)", backend.name)
            return backend
        except (BackendUnavailableError, ModelFormatError):
            pass
    problems = []
    for variant in wanted:
        try:
            backend = open_backend(variant.path, variant.format, variant.precision, config.threads)
        except (BackendUnavailableError, ModelFormatError) as exc:
            problems.append(str(exc))
            continue
        if config.type == "auto" and len(wanted) > 1:
            _store_choice(cache_dir, bundle, variant)
        return backend
    if problems and all("cannot load" in p or "expected" in p or "does not" in p for p in problems):
        raise ModelFormatError("no model variant could be loaded: " + "; ".join(problems))
    raise DetectorError("no model variant could be loaded: " + "; ".join(problems))


@dataclass
class CameraScoring:
    """What one camera is scored with: its learner (its calibration frames and answers) and, from it, the
    threshold and band that turn scores into verdicts (config ``detector.threshold`` /
    ``detector.uncertain_band`` override them)."""

    learner: CameraLearner
    calibration: CameraCalibration | None
    threshold_override: float | None = None
    band_override: float | None = None
    #: the camera's ignore zones (:mod:`appliance.detector.ignore_zones`): painted over before embedding
    ignore: IgnoreMask | None = None

    @property
    def threshold(self) -> float:
        return 0.5 if self.threshold_override is None else float(self.threshold_override)

    @property
    def band(self) -> float:
        """Half-width of the uncertain band in score units: the learner's logit band mapped through the
        sigmoid (``sigmoid(band_logit) - 0.5``)."""
        if self.band_override is not None:
            return float(self.band_override)
        return float(sigmoid(self.learner.model.band_logit)) - 0.5


class PrototypeDetector(Detector):
    """Embedding model + the camera's learner (:mod:`appliance.detector.learner`): every frame's prior logit
    from the model's generic failure head, corrected by what the camera's own labelled frames say."""

    def __init__(
        self, bundle: ModelBundle, backend: EmbeddingBackend, config: DetectorConfig, warm_up: bool = True
    ):
        self.bundle = bundle
        self.backend = backend
        self.backend_name = backend.name
        self.input_size = bundle.input_size
        self.calibration: CameraCalibration | None = None
        # the generic failure heads; a bundle without them gets its prior from the nearest prototypes
        self.head_w: np.ndarray | None = None
        self.head_b: np.ndarray | None = None
        if "head_w" in bundle.prototypes and "head_b" in bundle.prototypes:
            self.head_w = bundle.prototypes["head_w"].astype(np.float32)
            self.head_b = bundle.prototypes["head_b"].astype(np.float32)
        self._threshold_override = config.threshold
        self._band_override = config.uncertain_band
        self.set_calibration(None)
        if warm_up:
            backend.warm_up(self.input_size[1], self.input_size[0])

    def embed(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.backend.embed(to_model_input(image_bgr, self.input_size))

    def features(self, embedding: np.ndarray, patches: np.ndarray) -> tuple[FrameFeatures, np.ndarray]:
        """The frame's learner features and prior logit, and the cell head's logits (the heatmap).

        Without heads in the bundle: the prior is ``PROTOTYPE_SCALE`` x (cosine to the nearest generic failure
        prototype - cosine to the nearest ok prototype), and the heatmap the cells' distance from the frame's
        own embedding (the odd one out)."""
        if self.head_w is None or self.head_b is None:
            protos = self.bundle.prototypes
            nearest = float((protos["failure"] @ embedding).max() - (protos["ok"] @ embedding).max())
            s0 = PROTOTYPE_SCALE * nearest
            cell_logits = (1.0 - patches @ embedding).astype(np.float32)
            return FrameFeatures(frame_features(embedding, patches, None), s0), cell_logits
        cell_logits = (patches @ self.head_w[1] + self.head_b[1]).astype(np.float32)
        s0 = float(embedding @ self.head_w[0] + self.head_b[0])
        return FrameFeatures(frame_features(embedding, patches, cell_logits), s0), cell_logits

    @staticmethod
    def score(features: FrameFeatures, camera: CameraScoring) -> float:
        """The camera's failure score in [0, 1] for a frame's features."""
        return float(sigmoid(camera.learner.logit(features.phi, features.s0)))

    def scoring_for(
        self, calibration: CameraCalibration | None, answers: CameraLearner | None = None
    ) -> CameraScoring:
        """The learner for one camera: its calibration frames plus its stored ``answers`` (None: none)."""
        if calibration is not None and calibration.model_fingerprint != self.bundle.fingerprint():
            raise DetectorError(f"calibration of {calibration.camera} was made with another model")
        camera = calibration.camera if calibration is not None else (answers.camera if answers else "")
        learner = CameraLearner(camera, self.bundle.fingerprint())
        if answers is not None:
            learner.add(answers.stored_answers(), refit=False)
        if calibration is not None:
            learner.add(calibration_answers(self, calibration), refit=False)
        learner.refit()
        if calibration is not None and learner.model.mode == "guard" and learner.model.beta < 0:
            logger.info(
                "camera %s: the generic model reads some of its %d normal frames as failures; its scores are "
                "lowered by %.2f logits so that all but one in ten sit under the threshold",
                calibration.camera, len(calibration.ok), -learner.model.beta,
            )  # fmt: skip
        return CameraScoring(learner, calibration, self._threshold_override, self._band_override)

    def set_calibration(self, calibration: CameraCalibration | None) -> None:
        """Make ``calibration`` the default for :meth:`analyse` calls without ``camera``."""
        self.default_scoring = self.scoring_for(calibration)
        self.calibration = calibration

    @property
    def threshold(self) -> float:
        return self.default_scoring.threshold

    @property
    def band(self) -> float:
        return self.default_scoring.band

    def analyse(self, image_bgr: np.ndarray, camera: CameraScoring | None = None) -> Detection:
        start = time.perf_counter()
        camera = camera or self.default_scoring
        if camera.ignore:
            image_bgr = camera.ignore.apply(image_bgr, self.input_size)
        embedding, patches = self.embed(image_bgr)
        features, cell_logits = self.features(embedding, patches)
        score = self.score(features, camera)
        # the heatmap: the score spread over the cells by the cell head's logits; the strongest cell gets it
        span = float(cell_logits.max() - cell_logits.min())
        relative = (cell_logits - cell_logits.min()) / span if span > 1e-9 else np.ones_like(cell_logits)
        heatmap = (score * relative).astype(np.float32).reshape(self.bundle.patch_grid)
        if camera.ignore:
            heatmap = camera.ignore.clear_heatmap(heatmap)
        return Detection(
            score=score,
            verdict=verdict_for(score, camera.threshold, camera.band),
            heatmap=heatmap,
            latency_ms=(time.perf_counter() - start) * 1000,
            features=features,
        )


def load_detector(
    config: DetectorConfig, cache_dir: Path | None = None, warm_up: bool = True
) -> PrototypeDetector:
    """Load the configured model (default: the shipped one), pick a backend and warm it up (two runs on a
    black frame, so that timings start steady; the service skips them: see :func:`plugins.load_detector`).
    ``cache_dir`` (the state directory) remembers which backend it runs."""
    bundle = load_bundle(config.model)
    if "ok" not in bundle.prototypes or "failure" not in bundle.prototypes:
        raise ModelFormatError(f"model {bundle.name}: prototypes need arrays 'ok' and 'failure'")
    backend = select_backend(bundle, config, cache_dir)
    logger.info("model %s on %s, input %dx%d", bundle.name, backend.name, *bundle.input_size)
    return PrototypeDetector(bundle, backend, config, warm_up=warm_up)


def build_calibration(
    detector: PrototypeDetector,
    camera: str,
    ok_frames: Sequence[np.ndarray],
    failure_frames: Sequence[np.ndarray] = (),
) -> CameraCalibration:
    """Embed a camera's normal (and optional failure) frames with the detector's own backend."""
    dim = detector.bundle.prototypes["ok"].shape[1]
    cells = detector.bundle.patch_grid[0] * detector.bundle.patch_grid[1]
    ok, ok_patches = stack_embeddings((detector.embed(f) for f in ok_frames), dim, cells)
    failure, failure_patches = stack_embeddings((detector.embed(f) for f in failure_frames), dim, cells)
    return new_calibration(
        camera, detector.bundle.fingerprint(), ok, failure, ok_patches, failure_patches=failure_patches
    )


def calibration_answers(detector: PrototypeDetector, calibration: CameraCalibration) -> list[Answer]:
    """The calibration frames as the learner's answers (``source = "calibration"``). A calibration stored
    before the failure frames' patches were kept uses the global embedding for their cell part."""
    out = []
    pairs = [("ok", e, p) for e, p in zip(calibration.ok, calibration.ok_patches, strict=True)]
    failure_patches = calibration.failure_patches
    for i, e in enumerate(calibration.failure):
        patches = failure_patches[i] if len(failure_patches) == len(calibration.failure) else e[np.newaxis]
        pairs.append(("failure", e, patches))
    for n, (label, embedding, patches) in enumerate(pairs):
        features, _ = detector.features(embedding, patches)
        out.append(
            Answer(label, "calibration", features.phi, features.s0, frame_id=f"calibration-{n}",
                   time=calibration.created)
        )  # fmt: skip
    return out
