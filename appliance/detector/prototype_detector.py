"""The shipped detector: an embedding network plus per-camera prototypes.

Per frame: resize to the model's input size and convert BGR -> RGB (:func:`to_model_input`), run the
backend to get the global and patch embeddings, and let the :class:`PrototypeScorer` turn them into
a failure score and a patch heatmap; the score becomes ``ok``/``uncertain``/``failure`` through the
threshold and its uncertainty band.

``type = "auto"`` loads every variant of the bundle whose runtime is installed, times a few
inferences of each and keeps the fastest (logged, and reported as ``backend_name``).
"""

from __future__ import annotations

import gc
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
from appliance.detector import scoring
from appliance.detector.base import Detection, Detector, verdict_for
from appliance.detector.bundle import ModelBundle, ModelVariant, load_bundle
from appliance.detector.calibration import CameraCalibration, new_calibration, stack_embeddings
from appliance.detector.runtime import EmbeddingBackend, open_backend
from appliance.errors import BackendUnavailableError, DetectorError, ModelFormatError
from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

_BENCH_RUNS = 5
BACKEND_CACHE = "backend.json"
CLEARLY_FASTER = 0.2  # a later variant must be 20 % faster than the preferred one to win


def to_model_input(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """BGR frame of any size -> RGB uint8 (height, width, 3) at ``size`` = (width, height)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise DetectorError(f"expected a BGR image (h, w, 3), got shape {image_bgr.shape}")
    if (image_bgr.shape[1], image_bgr.shape[0]) != size:
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def _time_backend(backend: EmbeddingBackend, size: tuple[int, int]) -> float:
    dummy = np.zeros((size[1], size[0], 3), np.uint8)
    backend.embed(dummy)
    start = time.perf_counter()
    for _ in range(_BENCH_RUNS):
        backend.embed(dummy)
    return (time.perf_counter() - start) * 1000 / _BENCH_RUNS


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


def _store_choice(
    cache_dir: Path | None, bundle: ModelBundle, variant: ModelVariant, timings: dict[str, float]
) -> None:
    if cache_dir is None:
        return
    try:
        payload = {"key": _cache_key(bundle), "file": variant.path.name, "ms_per_frame": timings}
        atomic_write_text(cache_dir / BACKEND_CACHE, json.dumps(payload, indent=1))
    except OSError as exc:
        logger.debug("cannot cache the backend choice: %s", exc)


def select_backend(
    bundle: ModelBundle, config: DetectorConfig, cache_dir: Path | None = None
) -> EmbeddingBackend:
    """Open the variant to run: the first loadable one of the requested format, or with ``auto``
    the first listed loadable one unless another is at least 20 % faster in a short start-up
    benchmark.

    Candidates are timed one at a time and released before the next is loaded, and the winner is
    then opened again. The choice is kept in ``cache_dir/backend.json`` (the state directory) for
    this model, machine and Python, so later starts load only the winner: less time and memory.
    """
    wanted = [v for v in bundle.variants if config.type in ("auto", v.format)]
    if not wanted:
        raise ModelFormatError(f"model {bundle.name} has no {config.type} variant")
    cached = _cached_choice(cache_dir, bundle) if config.type == "auto" and len(wanted) > 1 else None
    if cached is not None:
        try:
            backend = open_backend(cached.path, cached.format, cached.precision, config.threads)
            logger.info("backend %s (fastest at an earlier start-up)", backend.name)
            return backend
        except (BackendUnavailableError, ModelFormatError):
            pass
    timed: list[tuple[float, ModelVariant]] = []
    problems = []
    for variant in wanted:
        try:
            backend = open_backend(variant.path, variant.format, variant.precision, config.threads)
        except (BackendUnavailableError, ModelFormatError) as exc:
            problems.append(str(exc))
            continue
        if config.type != "auto" or len(wanted) == 1:
            return backend
        ms = _time_backend(backend, bundle.input_size)
        logger.info("backend %s: %.2f ms per frame at start-up", backend.name, ms)
        timed.append((ms, variant))
        del backend
        gc.collect()
    if not timed:
        if problems and all("cannot load" in p or "expected" in p or "does not" in p for p in problems):
            raise ModelFormatError("no model variant could be loaded: " + "; ".join(problems))
        raise DetectorError("no model variant could be loaded: " + "; ".join(problems))
    # the manifest lists the preferred variant first (the one the scoring was tuned on); another
    # is taken only when clearly faster, so timing noise never flips the choice
    best_ms, best = timed[0]
    for ms, variant in timed[1:]:
        if ms < best_ms * (1 - CLEARLY_FASTER):
            best_ms, best = ms, variant
    _store_choice(cache_dir, bundle, best, {f"{v.format}/{v.precision}": round(ms, 3) for ms, v in timed})
    return open_backend(best.path, best.format, best.precision, config.threads)


@dataclass
class CameraScoring:
    """What one camera is scored with: its scorer and the threshold/band to turn scores into verdicts."""

    scorer: scoring.PrototypeScorer
    threshold: float
    band: float
    calibration: CameraCalibration | None


class PrototypeDetector(Detector):
    """Embedding model + prototype scorer; ``set_calibration`` switches the camera's support set."""

    def __init__(self, bundle: ModelBundle, backend: EmbeddingBackend, config: DetectorConfig):
        self.bundle = bundle
        self.backend = backend
        self.backend_name = backend.name
        self.input_size = bundle.input_size
        self.calibration: CameraCalibration | None = None
        self._threshold_override = config.threshold
        self._band_override = config.uncertain_band
        self.set_calibration(None)
        backend.warm_up(self.input_size[1], self.input_size[0])

    def embed(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.backend.embed(to_model_input(image_bgr, self.input_size))

    def scoring_for(self, calibration: CameraCalibration | None) -> CameraScoring:
        """The scorer, threshold and band for one camera (None: the model's generic prototypes)."""
        if calibration is not None and calibration.model_fingerprint != self.bundle.fingerprint():
            raise DetectorError(f"calibration of {calibration.camera} was made with another model")
        scorer = scoring.scorer_from_calibration(
            self.bundle,
            calibration.ok if calibration is not None else None,
            calibration.failure if calibration is not None else None,
            calibration.ok_patches if calibration is not None else None,
        )
        if calibration is not None and scorer.threshold_shift > 0:
            logger.warning(
                "camera %s: %d of %d calibration frames read as failures to the model; its threshold is "
                "raised by %.3f so they do not alarm (check them, or calibrate on more typical frames)",
                calibration.camera, scorer.calibration_alarms, len(calibration.ok), scorer.threshold_shift,
            )  # fmt: skip
        # a scorer may derive its own threshold/band from the calibration set; config overrides both
        threshold = self._threshold_override
        if threshold is None:
            threshold = self.bundle.threshold if scorer.threshold is None else scorer.threshold
        band = self._band_override
        if band is None:
            band = self.bundle.uncertain_band if scorer.uncertain_band is None else scorer.uncertain_band
        return CameraScoring(scorer, float(threshold), float(band), calibration)

    def set_calibration(self, calibration: CameraCalibration | None) -> None:
        """Make ``calibration`` the default for :meth:`analyse` calls without ``scoring``."""
        self.default_scoring = self.scoring_for(calibration)
        self.calibration = calibration
        self.threshold, self.band = self.default_scoring.threshold, self.default_scoring.band

    def analyse(self, image_bgr: np.ndarray, camera: CameraScoring | None = None) -> Detection:
        start = time.perf_counter()
        camera = camera or self.default_scoring
        embedding, patches = self.embed(image_bgr)
        score, heatmap = camera.scorer.score(embedding, patches, self.bundle.patch_grid)
        return Detection(
            score=score,
            verdict=verdict_for(score, camera.threshold, camera.band),
            heatmap=heatmap,
            latency_ms=(time.perf_counter() - start) * 1000,
        )


def load_detector(config: DetectorConfig, cache_dir: Path | None = None) -> PrototypeDetector:
    """Load the configured model (default: the shipped one), pick a backend and warm it up.
    ``cache_dir`` (the state directory) remembers which backend was fastest."""
    bundle = load_bundle(config.model)
    if "ok" not in bundle.prototypes or "failure" not in bundle.prototypes:
        raise ModelFormatError(f"model {bundle.name}: prototypes need arrays 'ok' and 'failure'")
    backend = select_backend(bundle, config, cache_dir)
    logger.info("model %s on %s, input %dx%d", bundle.name, backend.name, *bundle.input_size)
    return PrototypeDetector(bundle, backend, config)


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
    failure, _ = stack_embeddings((detector.embed(f) for f in failure_frames), dim, cells)
    return new_calibration(camera, detector.bundle.fingerprint(), ok, failure, ok_patches)
