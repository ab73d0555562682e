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

import cv2
import numpy as np

from appliance.config.model import CameraConfig, LayerwatchConfig
from appliance.detector import build_calibration, load_detector, save_calibration
from appliance.errors import CalibrationError, SourceError
from appliance.image_guard import camera_pixel_limit, decode_image
from appliance.sources import FrameSource, build_source

logger = logging.getLogger(__name__)

GIVE_UP_S = 8.0  # seconds without a frame before calibrate gives up (the command ends within 15 s)


def _pick_camera(config: LayerwatchConfig, name: str | None) -> CameraConfig:
    if name is None:
        return config.cameras[0]
    for camera in config.cameras:
        if camera.name == name:
            return camera
    raise CalibrationError(f"no camera named {name!r} (have: {', '.join(c.name for c in config.cameras)})")


def capture_frames(
    camera: CameraConfig, count: int, interval_s: float, input_size: tuple[int, int] | None
) -> list[np.ndarray]:
    """Take ``count`` frames from the camera, ``interval_s`` apart; camera hiccups are retried, but a
    camera that gives no frame for ``GIVE_UP_S`` seconds (unreachable, unplugged, stalled) ends it
    with one :class:`CalibrationError` naming the camera, its URL without credentials and the cause."""
    frames: list[np.ndarray] = []
    source = build_source(camera.name, camera.source, input_size)
    started = time.monotonic()
    deadline = started + max(60.0, count * (interval_s + 5.0))
    last_frame_at = started
    cause = "no frame yet"
    # the one error below says what is wrong: no line per retry from the sources, nor OpenCV's own
    sources_log = logging.getLogger("appliance.sources")
    level, cv_level = sources_log.level, cv2.utils.logging.getLogLevel()
    sources_log.setLevel(logging.ERROR)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        with source:
            while len(frames) < count:
                now = time.monotonic()
                if now - last_frame_at >= GIVE_UP_S:
                    raise CalibrationError(_no_frames(camera.name, source, now - last_frame_at, cause))
                if now > deadline:
                    raise CalibrationError(
                        f"camera {camera.name}: only {len(frames)} of {count} frames arrived"
                    )
                try:
                    frame = source.read(timeout_s=max(0.1, min(5.0, last_frame_at + GIVE_UP_S - now)))
                except SourceError as exc:
                    cause = source.status.last_error or str(exc)
                    logger.debug("camera %s: %s; retrying", camera.name, cause)
                    time.sleep(max(0.0, min(1.0, last_frame_at + GIVE_UP_S - time.monotonic())))
                    continue
                last_frame_at = time.monotonic()
                frames.append(frame.image)
                logger.info("camera %s: frame %d/%d", camera.name, len(frames), count)
                if len(frames) < count and interval_s > 0:
                    time.sleep(interval_s)
                    last_frame_at = time.monotonic()
    finally:
        sources_log.setLevel(level)
    cv2.utils.logging.setLogLevel(cv_level)  # not after giving up: a grabber still opening stays quiet
    return frames


def _no_frames(name: str, source: FrameSource, waited_s: float, cause: str) -> str:
    where = getattr(source, "description", "")  # the streaming sources' URL or device, credentials redacted
    if where and where not in cause:
        cause = f"{where}: {cause}"
    return f"camera {name}: no frame for {waited_s:.0f} s, giving up: {cause}"


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
    count = frames or camera.calibration.frames
    interval_s = camera.calibration.interval_s
    ok_frames: list[np.ndarray] = []
    if from_folder is None and camera.source.type != "csi":
        # the camera first: one that cannot be reached fails fast, before the model is loaded
        ok_frames = capture_frames(camera, count, interval_s, None)
    detector = load_detector(config.detector)
    if from_folder is not None:
        ok_frames = read_image_folder(from_folder, camera_pixel_limit(camera.source))
    elif not ok_frames:  # the Pi camera's lores stream is sized to the model's input
        ok_frames = capture_frames(camera, count, interval_s, detector.input_size)
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
