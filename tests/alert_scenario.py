"""Alerts for integration tests: a synthetic one for driving sinks directly, and a calibrated replay
that makes the real pipeline raise one (as tests/test_pipeline_end_to_end.py does)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from appliance.actions.evidence import encode_jpeg
from appliance.config.model import DetectorConfig
from appliance.decision import Alert, CameraState
from appliance.detector import Detection, Verdict, build_calibration, load_detector, save_calibration
from appliance.service.pipeline import FrameResult
from appliance.sources import Frame
from tests.test_calibration import bed_images

NORMAL = (200, 180, 60)
FAILURE = (30, 30, 220)


def synthetic_alert(camera: str = "printer", repeat: int = 0, alert_id: str | None = None):
    """(alert, frame result, evidence JPEG) as the pipeline would hand them to a sink."""
    image = np.full((240, 320, 3), 60, np.uint8)
    cv2.rectangle(image, (100, 90), (180, 170), FAILURE, -1)
    detection = Detection(score=0.93, verdict=Verdict.FAILURE)
    alert = Alert(alert_id or uuid.uuid4().hex[:12], camera, 0.93, 4, 5, 3, 4, repeat=repeat)
    result = FrameResult(camera, Frame(image, time.time(), 7), detection, True, CameraState.FAILURE, 2.0, 7)
    return alert, result, encode_jpeg(image)


PINNED_BACKEND = '[detector]\ntype = "onnx"\n'
"""Config for a service that must raise the scenario's alert: its synthetic failure frames are
confirmed on ONNX Runtime int8, not on LiteRT int8 (on LiteRT they stay watching/suspect). With
``auto`` the start-up timing picks LiteRT when it is 20 % faster, which a loaded machine can make
happen: the test then waits for an alert that never comes. Calibrate with :data:`PINNED` too."""
PINNED = DetectorConfig(type="onnx")


def calibrate(
    state_dir: Path, work: Path, camera: str = "printer", detector_config: DetectorConfig | None = None
) -> None:
    """Calibrate ``camera`` in ``state_dir`` with synthetic normal and failure pictures.

    The ONNX int8 variant calibrates: the one a service with ``detector.type = "auto"`` runs too (the first
    listed variant, never a start-up timing's winner).
    """
    config = detector_config or DetectorConfig(type="onnx")
    detector = load_detector(config, cache_dir=state_dir)
    normal = [cv2.imread(str(p)) for p in sorted(bed_images(work / "cal-normal", 6, 1, NORMAL).iterdir())]
    failures = [cv2.imread(str(p)) for p in sorted(bed_images(work / "cal-failure", 4, 2, FAILURE).iterdir())]
    save_calibration(build_calibration(detector, camera, normal, failures), state_dir)


def replay_folder(folder: Path, normal: int, failures: int) -> Path:
    """``normal`` normal frames, then ``failures`` failure frames (other noise than calibration)."""
    folder.mkdir(parents=True, exist_ok=True)
    if normal:
        for i, path in enumerate(sorted(bed_images(folder / "n", normal, 11, NORMAL).iterdir())):
            path.rename(folder / f"a{i:02d}.jpg")
    if failures:
        for i, path in enumerate(sorted(bed_images(folder / "f", failures, 12, FAILURE).iterdir())):
            path.rename(folder / f"b{i:02d}.jpg")
    for sub in ("n", "f"):
        if (folder / sub).exists():
            (folder / sub).rmdir()
    return folder


def service_toml(
    state_dir: Path, replay: Path, extra: str = "", loop: bool = False, interval: float = 0
) -> str:
    return (
        f'[service]\nstate_dir = "{state_dir}"\nanalysis_interval_s = {interval}\n'
        f'[[cameras]]\nname = "printer"\n'
        f'source = {{ type = "replay", path = "{replay}", rate_fps = 0, '
        f"loop = {'true' if loop else 'false'} }}\n"
        "decision = { verify_interval_s = 0, cooldown_s = 600 }\n" + extra
    )
