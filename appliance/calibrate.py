"""``layerwatch calibrate``: capture a camera's normal frames (or read a folder) and store the
calibration the detector uses from its next start.

Point the camera at a normal print in progress (or an empty bed under the usual light) and run it;
frames are taken ``calibration.interval_s`` seconds apart so they show some variety. Give
``--failures DIR`` with a few pictures of failures *from this camera* to sharpen the model further.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from appliance.config.model import CameraConfig, LayerwatchConfig
from appliance.detector import build_calibration, load_detector, save_calibration
from appliance.errors import CalibrationError, SourceError
from appliance.image_guard import camera_pixel_limit, decode_image
from appliance.sources import build_source

logger = logging.getLogger(__name__)


def _pick_camera(config: LayerwatchConfig, name: str | None) -> CameraConfig:
    if name is None:
        return config.cameras[0]
    for camera in config.cameras:
        if camera.name == name:
            return camera
    raise CalibrationError(f"no camera named {name!r} (have: {', '.join(c.name for c in config.cameras)})")


def capture_frames(
    camera: CameraConfig, count: int, interval_s: float, input_size: tuple[int, int]
) -> list[np.ndarray]:
    """Take ``count`` frames from the camera, ``interval_s`` apart; camera hiccups are retried."""
    frames: list[np.ndarray] = []
    source = build_source(camera.name, camera.source, input_size)
    deadline = time.monotonic() + max(60.0, count * (interval_s + 5.0))
    with source:
        while len(frames) < count:
            if time.monotonic() > deadline:
                raise CalibrationError(f"camera {camera.name}: only {len(frames)} of {count} frames arrived")
            try:
                frame = source.read(timeout_s=5.0)
            except SourceError as exc:
                logger.warning("camera %s: %s; retrying", camera.name, exc)
                time.sleep(1.0)
                continue
            frames.append(frame.image)
            logger.info("camera %s: frame %d/%d", camera.name, len(frames), count)
            if len(frames) < count and interval_s > 0:
                time.sleep(interval_s)
    return frames


def reset_camera(config: LayerwatchConfig, camera_name: str | None) -> list[Path]:
    """``layerwatch calibrate --reset``: the camera starts again from the generic model: its calibration
    and its answers (``calibration.npz``, ``learner.npz``) are removed; returns what was removed."""
    from appliance.detector.calibration import calibration_path
    from appliance.detector.camera_learner import learner_path

    camera = _pick_camera(config, camera_name)
    removed = []
    for path in (
        calibration_path(config.service.state_dir, camera.name),
        learner_path(config.service.state_dir, camera.name),
    ):
        if path.is_file():
            path.unlink()
            removed.append(path)
    logger.info("camera %s: reset (%d files removed)", camera.name, len(removed))
    return removed


def run_calibration(
    config: LayerwatchConfig,
    camera_name: str | None,
    frames: int | None,
    from_folder: Path | None,
    failures: Path | None,
) -> Path:
    camera = _pick_camera(config, camera_name)
    detector = load_detector(config.detector)
    if from_folder is not None:
        ok_frames = read_image_folder(from_folder, camera_pixel_limit(camera.source))
    else:
        count = frames or camera.calibration.frames
        ok_frames = capture_frames(camera, count, camera.calibration.interval_s, detector.input_size)
    limit = camera_pixel_limit(camera.source, ok_frames)  # no failure picture larger than the camera's frames
    failure_frames = read_image_folder(failures, limit) if failures is not None else []
    calibration = build_calibration(detector, camera.name, ok_frames, failure_frames)
    detector.scoring_for(calibration)  # warns now, not at the next start, if the calibration guard fires
    return save_calibration(calibration, config.service.state_dir)


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MAX_FILE_BYTES = 64 * 1024 * 1024  # a picture file larger than this is not read at all


def read_image_folder(folder: Path, max_pixels: int) -> list[np.ndarray]:
    """The .jpg/.jpeg/.png/.bmp pictures of ``folder`` in name order, as BGR arrays. Each is decoded only
    when its header says it has at most ``max_pixels`` (:mod:`appliance.image_guard`); a larger or
    unreadable one is skipped with a warning."""
    if not folder.is_dir():
        raise CalibrationError(f"{folder} is not a folder")
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
            images.append(decode_image(path.read_bytes(), max_pixels, path.name))
        except (OSError, ValueError) as exc:
            logger.warning("skipping %s: %s", path, exc)
    if not images:
        raise CalibrationError(f"{folder} holds no readable images")
    return images
