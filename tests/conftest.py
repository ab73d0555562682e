"""Shared fixtures: the real mosquitto broker, synthetic clips, the RTSP and HTTP test servers."""

from __future__ import annotations

import os

# one BLAS thread, as the appliance runs (appliance/cli.py sets the same before numpy is imported): the
# learner's refit costs 14-16 ms of CPU so, and 144-529 ms with OpenBLAS's threads spinning on a busy machine
for _blas_threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas_threads, "1")

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.disk_fixtures import small_tmpfs  # noqa: F401
from tests.mqtt_fixtures import mosquitto, subscriber  # noqa: F401
from tests.source_fixtures import *  # noqa: F403

os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")
# every service a test starts serves its HTTP API on 127.0.0.1 only, on a free port
os.environ.setdefault("LAYERWATCH_API_LISTEN", "127.0.0.1:0")
REPO = Path(__file__).resolve().parents[1]


def write_clip(path: Path, frames: int = 40, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Path:
    """A synthetic MP4 (mp4v) made here: a moving bright block over a dark 'bed'."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    rng = np.random.default_rng(7)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        x = 20 + (i * 5) % (size[0] - 80)
        cv2.rectangle(image, (x, 100), (x + 60, 160), (200, 180, 60), -1)
        image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="session")
def synthetic_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "synthetic.mp4")


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    manifest = REPO / "models" / "layerwatch.json"
    if not manifest.is_file():
        pytest.fail("the shipped model models/layerwatch.json is missing")
    return manifest
