"""Figures for print history and telemetry on this machine (numbers, not a pass/fail test).

    python scripts/bench_history.py [--frames 600] [--size 640x480]

Prints: JPEG encode + save per frame (ms), the timelapse of ``--frames`` frames with the defaults
(45 s target, 1280 px, 50 MB) and under a tight limit (attempts, seconds, bytes), a retention sweep
over as many files (ms), and the anomaly detector per sample (microseconds, 4 signals).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from appliance.actions.evidence import encode_jpeg
from appliance.config.history import TimelapseConfig
from appliance.config.telemetry import SignalConfig, TelemetryConfig
from appliance.history.frames import frame_name, write_file
from appliance.history.retention import DAY_S, prune_images
from appliance.history.timelapse import make_timelapse
from appliance.telemetry.detector import AnomalyDetector


def frames(folder: Path, count: int, width: int, height: int) -> float:
    """Save ``count`` synthetic frames like the sink does; returns ms per frame."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i in range(count):
        image = np.full((height, width, 3), 45, np.uint8)
        cv2.circle(image, (width // 2, height // 2), 20 + (i * 3) % (height // 3), (40, 190, 230), -1)
        image = cv2.add(image, rng.integers(0, 25, image.shape, dtype=np.uint8))
        write_file(folder / frame_name(1.76e9 + 10 * i, "job"), encode_jpeg(image))
    return 1000 * (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames in the job (600: 100 min at 10 s)")
    parser.add_argument("--size", default="640x480", help="frame size WxH")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "printer" / "job"
        folder.mkdir(parents=True)
        per_frame = frames(folder, args.frames, width, height)
        size = sum(p.stat().st_size for p in folder.glob("*.jpg"))
        each_kb = size / args.frames / 1e3
        print(f"frame save: {per_frame:.2f} ms per {width}x{height} frame (JPEG 85), {each_kb:.1f} kB each")
        for label, config in (
            ("defaults", TimelapseConfig()),
            ("tight 1 MB", TimelapseConfig(max_bytes=1_000_000)),
        ):
            made = make_timelapse(folder, config)
            print(f"timelapse {label}: {made.frames} frames -> {made.duration_s:.1f} s at {made.fps} fps, "
                  f"{made.width}x{made.height} crf {made.crf}, {made.size_bytes / 1e6:.2f} MB, "
                  f"{made.attempts} attempt(s), {made.encode_s:.1f} s")  # fmt: skip
        now = time.time()
        for path in folder.glob("*.jpg"):
            os.utime(path, (now - 8 * DAY_S, now - 8 * DAY_S))
        started = time.perf_counter()
        pruned = prune_images(Path(tmp), 7, now)
        print(f"retention: {pruned.files} files deleted in {1000 * (time.perf_counter() - started):.1f} ms")
    extra = {"roughness": SignalConfig(max=75), "layer_height": SignalConfig(min=0.05, max=0.4)}
    detector = AnomalyDetector(TelemetryConfig(signals=extra))  # nozzle_temp and bed_temp stay
    rng = np.random.default_rng(1)
    samples = [
        {"nozzle_temp": 210 + rng.uniform(-0.4, 0.4), "nozzle_target": 210,
         "bed_temp": 60 + rng.uniform(-0.3, 0.3), "bed_target": 60,
         "roughness": 32 + rng.uniform(-3, 3), "layer_height": 0.2}
        for _ in range(20000)
    ]  # fmt: skip
    started = time.perf_counter()
    for i, sample in enumerate(samples):
        detector.observe("sensor", sample, i * 0.01)
    per_sample = 1e6 * (time.perf_counter() - started) / len(samples)
    window = detector.config.zscore_window
    print(f"anomaly detector: {per_sample:.1f} us per sample (4 signals, window {window})")


if __name__ == "__main__":
    main()
