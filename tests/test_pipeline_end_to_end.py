"""The whole frame path with the shipped model: replay -> detector -> decision -> alert + evidence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.actions.evidence import draw_evidence, encode_jpeg
from appliance.detector import Detection, Verdict
from tests.test_calibration import bed_images

pytestmark = pytest.mark.usefixtures("shipped_model")


def test_failure_is_confirmed_alerted_and_evidence_kept(tmp_path: Path):
    normal = bed_images(tmp_path / "normal", 6, 1, (200, 180, 60))
    failures = bed_images(tmp_path / "failures", 4, 2, (30, 30, 220))
    replay = tmp_path / "replay"
    replay.mkdir()
    # 6 normal frames, then 10 failure frames (different noise than the calibration set)
    for i, path in enumerate(sorted(bed_images(tmp_path / "n2", 6, 11, (200, 180, 60)).iterdir())):
        path.rename(replay / f"a{i:02d}.jpg")
    for i, path in enumerate(sorted(bed_images(tmp_path / "f2", 10, 12, (30, 30, 220)).iterdir())):
        path.rename(replay / f"b{i:02d}.jpg")
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\nanalysis_interval_s = 0\n'
        f'[[cameras]]\nname = "printer"\nsource = {{ type = "replay", path = "{replay}" }}\n'
        "decision = { verify_interval_s = 0, cooldown_s = 60 }\n"
    )
    run = [sys.executable, "-m", "appliance"]
    calibrate = subprocess.run(
        [*run, "calibrate", "--config", str(config),
         "--from-folder", str(normal), "--failures", str(failures)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert calibrate.returncode == 0, calibrate.stderr
    proc = subprocess.run(
        [*run, "run", "--config", str(config), "--print-decisions"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    frame_lines = [line for line in lines if " frame " in line]
    assert len(frame_lines) == 16
    assert all("state watching" in line for line in frame_lines[:6]), frame_lines[:6]
    alerts = [line for line in lines if "ALERT" in line]
    assert len(alerts) == 1, proc.stdout
    assert any("-> suspect" in line for line in lines) and any("suspect -> failure" in line for line in lines)
    evidence = list((tmp_path / "state" / "cameras" / "printer" / "alerts").glob("*.jpg"))
    assert len(evidence) == 1
    image = cv2.imread(str(evidence[0]))
    assert image is not None and image.shape[:2] == (240, 320)


def test_evidence_marks_the_hot_region():
    frame = np.full((240, 320, 3), 60, np.uint8)
    heatmap = np.zeros((4, 5), np.float32)
    heatmap[3, 4] = 0.95  # bottom-right cell
    detection = Detection(score=0.9, verdict=Verdict.FAILURE, heatmap=heatmap)
    drawn = draw_evidence(frame, detection, "test")
    bottom_right = drawn[200:240, 260:320].astype(int)
    top_left_below_caption = drawn[60:100, 0:60].astype(int)
    assert bottom_right[..., 2].mean() > top_left_below_caption[..., 2].mean() + 40
    jpeg = encode_jpeg(drawn)
    assert jpeg[:2] == b"\xff\xd8"
