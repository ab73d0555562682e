"""Calibration: `layerwatch calibrate` from a folder or a camera; the next start uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config import load_config
from appliance.config.model import DetectorConfig
from appliance.detector import build_calibration, load_calibration, load_detector, save_calibration
from appliance.detector.calibration import calibration_path
from appliance.errors import CalibrationError
from appliance.service.runner import Service
from tests.service_harness import write_config

pytestmark = pytest.mark.usefixtures("shipped_model")


def bed_images(folder: Path, count: int, seed: int, colour: tuple[int, int, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = np.full((240, 320, 3), 50, np.uint8)
        cv2.rectangle(image, (100 + i, 90), (180 + i, 170), colour, -1)
        image = cv2.add(image, rng.integers(0, 10, image.shape, dtype=np.uint8))
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
    return folder


def test_calibrate_from_folder_is_used_on_next_start(tmp_path: Path, synthetic_clip: Path):
    config_path = write_config(tmp_path, synthetic_clip)
    normal = bed_images(tmp_path / "normal", 6, 1, (200, 180, 60))
    failures = bed_images(tmp_path / "failures", 3, 2, (30, 30, 220))
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "calibrate", "--config", str(config_path),
         "--from-folder", str(normal), "--failures", str(failures)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stored = calibration_path(tmp_path / "state", "printer")
    assert stored.is_file() and str(stored) in proc.stdout

    config = load_config(config_path, environ={})
    service = Service(config)
    service.build()
    pipeline = service.pipelines[0]
    calibration = pipeline.scoring.calibration
    assert calibration is not None
    assert (len(calibration.ok), len(calibration.failure)) == (6, 3)
    assert pipeline.state_payload()["calibrated"] is True


def test_calibrate_captures_frames_from_the_camera(tmp_path: Path, synthetic_clip: Path):
    config_path = write_config(tmp_path, synthetic_clip, rate_fps=0)
    text = config_path.read_text() + "[cameras.calibration]\nframes = 5\ninterval_s = 0\n"
    config_path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "calibrate", "--config", str(config_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    detector = load_detector(DetectorConfig())
    calibration = load_calibration(tmp_path / "state", "printer", detector.bundle.fingerprint())
    assert calibration is not None and len(calibration.ok) == 5 and len(calibration.failure) == 0


def test_calibration_from_another_model_is_ignored(tmp_path: Path):
    detector = load_detector(DetectorConfig())
    frame = np.full((120, 160, 3), 90, np.uint8)
    calibration = build_calibration(detector, "printer", [frame, frame])
    calibration.model_fingerprint = "not-this-model"
    save_calibration(calibration, tmp_path)
    assert load_calibration(tmp_path, "printer", detector.bundle.fingerprint()) is None


def test_calibrated_normal_look_scores_lower_than_uncalibrated():
    """Calibrating on this camera's normal frames must make those frames read normal (never worse)."""
    detector = load_detector(DetectorConfig())
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(8):
        image = np.full((240, 320, 3), 70, np.uint8)
        cv2.circle(image, (160, 120), 60, (40, 160, 220), -1)
        frames.append(cv2.add(image, rng.integers(0, 8, image.shape, dtype=np.uint8)))
    before = np.mean([detector.analyse(f).score for f in frames[4:]])
    detector.set_calibration(build_calibration(detector, "cam", frames[:4]))
    after = np.mean([detector.analyse(f).score for f in frames[4:]])
    assert after <= before + 1e-6
    assert after < detector.threshold


def test_empty_folder_is_a_clear_error(tmp_path: Path):
    from appliance.detector.calibration import read_image_folder

    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no readable images"):
        read_image_folder(tmp_path / "empty")


def test_unknown_camera_name_exits_non_zero(tmp_path: Path, synthetic_clip: Path):
    config_path = write_config(tmp_path, synthetic_clip)
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "calibrate", "--config", str(config_path), "--camera", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "no camera named 'nope'" in proc.stderr
