"""Per-camera calibration: this camera's normal look (and failure examples, if the user has some).

``layerwatch calibrate`` embeds frames from the camera (or a folder) with the detector's own backend
and stores the embeddings in ``<state_dir>/cameras/<name>/calibration.npz``. The detector loads the
file on start; a calibration made with a different model is refused (the embedding spaces differ).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.errors import CalibrationError
from appliance.state_files import atomic_write_bytes, set_aside

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.npz"


@dataclass
class CameraCalibration:
    """Embeddings of a camera's calibration frames.

    ``ok`` (N, D) and ``failure`` (M, D, M may be 0) are global embeddings; ``ok_patches``
    (N, P, D) and ``failure_patches`` (M, P, D; empty in calibrations stored before it was kept) are the
    frames' patch embeddings: the learner's features read the most failure-like cell.
    """

    camera: str
    model_fingerprint: str
    ok: np.ndarray
    failure: np.ndarray
    ok_patches: np.ndarray
    created: float
    failure_patches: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.float32))

    @property
    def summary(self) -> str:
        return f"{len(self.ok)} normal + {len(self.failure)} failure frames"


def calibration_path(state_dir: Path, camera: str) -> Path:
    return state_dir / "cameras" / camera / CALIBRATION_FILE


def save_calibration(calibration: CameraCalibration, state_dir: Path) -> Path:
    """Write atomically (temp file, fsync, rename, fsync the folder) so a crash or a power cut never
    leaves half a calibration: the path holds the old file or the new one."""
    path = calibration_path(state_dir, calibration.camera)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        camera=np.array(calibration.camera),
        model_fingerprint=np.array(calibration.model_fingerprint),
        ok=calibration.ok.astype(np.float16),
        failure=calibration.failure.astype(np.float16),
        ok_patches=calibration.ok_patches.astype(np.float16),
        failure_patches=calibration.failure_patches.astype(np.float16),
        created=np.array(calibration.created),
    )
    atomic_write_bytes(path, buffer.getvalue())
    logger.info("saved calibration for %s: %s -> %s", calibration.camera, calibration.summary, path)
    return path


def _read_calibration(path: Path) -> CameraCalibration:
    """Parse and shape-check a calibration file; any problem raises (the caller sets the file aside)."""
    with np.load(path, allow_pickle=False) as npz:
        calibration = CameraCalibration(
            camera=str(npz["camera"]),
            model_fingerprint=str(npz["model_fingerprint"]),
            ok=npz["ok"].astype(np.float32),
            failure=npz["failure"].astype(np.float32),
            ok_patches=npz["ok_patches"].astype(np.float32),
            created=float(npz["created"]),
            failure_patches=(
                npz["failure_patches"].astype(np.float32)
                if "failure_patches" in npz.files
                else np.zeros((0, 0, 0), np.float32)
            ),
        )
    ok, failure, patches = calibration.ok, calibration.failure, calibration.ok_patches
    if ok.ndim != 2 or len(ok) == 0 or failure.ndim != 2 or patches.ndim != 3:
        raise ValueError(f"wrong shapes: ok {ok.shape}, failure {failure.shape}, ok_patches {patches.shape}")
    dim = ok.shape[1]
    if (len(failure) and failure.shape[1] != dim) or (patches.shape[0], patches.shape[2]) != (len(ok), dim):
        shapes = f"ok {ok.shape}, failure {failure.shape}, ok_patches {patches.shape}"
        raise ValueError(f"shapes disagree: {shapes}")
    return calibration


def load_calibration(
    state_dir: Path, camera: str, model_fingerprint: str, report: Callable[[str], None] | None = None
) -> CameraCalibration | None:
    """The camera's stored calibration, or None when there is none or it belongs to another model.

    A file that cannot be read (truncated, empty, bad CRC, wrong shapes: what a power cut during an
    older non-atomic save leaves) never stops the service: it is set aside as
    ``calibration.npz.bad-<time>``, ``report`` (if given) gets one line saying so, and the camera
    runs uncalibrated until ``recalibrate``.
    """
    path = calibration_path(state_dir, camera)
    if not path.is_file():
        return None
    try:
        calibration = _read_calibration(path)
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, KeyError, ValueError, OSError, ...
        reason = f"{type(exc).__name__}: {exc}"
        moved = set_aside(path, reason)
        message = (
            f"calibration of {camera} unreadable ({reason}); set aside as "
            f"{moved.name if moved else path.name}; running uncalibrated until recalibrated"
        )
        logger.warning("%s", message)
        if report is not None:
            report(message)
        return None
    if calibration.model_fingerprint != model_fingerprint:
        logger.warning(
            "calibration of %s was made with another model; run `layerwatch calibrate` again", camera
        )
        return None
    return calibration


def read_image_folder(folder: Path) -> list[np.ndarray]:
    """All .jpg/.jpeg/.png/.bmp images of a folder in name order, as BGR arrays."""
    import cv2

    if not folder.is_dir():
        raise CalibrationError(f"{folder} is not a folder")
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                logger.warning("skipping unreadable image %s", path)
                continue
            images.append(image)
    if not images:
        raise CalibrationError(f"{folder} holds no readable images")
    return images


def stack_embeddings(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], dim: int, patches: int
) -> tuple[np.ndarray, np.ndarray]:
    embeddings, patch_sets = [], []
    for embedding, patch in pairs:
        embeddings.append(embedding)
        patch_sets.append(patch)
    if not embeddings:
        return np.zeros((0, dim), np.float32), np.zeros((0, patches, dim), np.float32)
    return np.stack(embeddings).astype(np.float32), np.stack(patch_sets).astype(np.float32)


def new_calibration(
    camera: str,
    fingerprint: str,
    ok: np.ndarray,
    failure: np.ndarray,
    ok_patches: np.ndarray,
    failure_patches: np.ndarray | None = None,
) -> CameraCalibration:
    if len(ok) == 0:
        raise CalibrationError(f"camera {camera}: calibration needs at least one normal frame")
    patches = np.zeros((0, 0, 0), np.float32) if failure_patches is None else failure_patches
    return CameraCalibration(camera, fingerprint, ok, failure, ok_patches, time.time(), patches)
