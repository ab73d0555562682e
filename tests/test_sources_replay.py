"""The replay source: a folder of images and a real H.264 file, in order, paced, looped."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config.sources import ReplaySourceConfig
from appliance.errors import EndOfStreamError, SourceError, SourceUnavailableError
from appliance.sources import build_source
from appliance.sources.base import SourceState
from appliance.sources.replay import ReplaySource

REPO = Path(__file__).resolve().parents[1]


def replay(path: Path, **fields: object) -> ReplaySource:
    source = build_source("replay", ReplaySourceConfig.model_validate({"path": path, **fields}))
    assert isinstance(source, ReplaySource)
    return source


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Four images whose grey level tells their sorted order (10, 20, 30, 40), written out of order,
    plus files a replay must skip."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, level in [("c.png", 30), ("a.jpg", 10), ("d.JPEG", 40), ("b.png", 20)]:
        cv2.imwrite(
            str(folder / name), np.full((24, 32, 3), level, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100]
        )
    (folder / "notes.txt").write_text("not an image")
    (folder / "bz-broken.png").write_bytes(b"\x89PNG broken")
    (folder / "sub").mkdir()
    return folder


def level(image: np.ndarray) -> int:
    return round(float(image.mean()) / 10) * 10


def test_folder_plays_in_sorted_order_then_ends(image_folder: Path) -> None:
    with replay(image_folder) as source:
        frames = [source.read() for _ in range(4)]
        assert [level(f.image) for f in frames] == [10, 20, 30, 40]
        assert [f.sequence for f in frames] == [0, 1, 2, 3]
        with pytest.raises(EndOfStreamError):
            source.read()
        assert source.status.state == SourceState.ENDED
        assert source.status.dropped == 1  # the broken PNG was skipped
        with pytest.raises(EndOfStreamError):  # stays at the end
            source.read()
    assert source.status.state == SourceState.CLOSED


def test_folder_loops(image_folder: Path) -> None:
    with replay(image_folder, loop=True) as source:
        levels = [level(source.read().image) for _ in range(10)]
    assert levels == [10, 20, 30, 40] * 2 + [10, 20]


def test_video_file_plays_every_frame_then_ends(short_clip: Path) -> None:
    with replay(short_clip) as source:
        frames = []
        with pytest.raises(EndOfStreamError):
            while True:
                frames.append(source.read())
    assert len(frames) == 20
    assert frames[0].image.shape == (240, 320, 3)
    assert [f.sequence for f in frames] == list(range(20))
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_video_file_loops_from_the_first_frame(short_clip: Path) -> None:
    with replay(short_clip, loop=True) as source:
        frames = [source.read() for _ in range(23)]
    assert np.array_equal(frames[20].image, frames[0].image)
    assert np.array_equal(frames[22].image, frames[2].image)
    assert frames[22].sequence == 22


def test_rate_paces_reads_and_zero_does_not(image_folder: Path) -> None:
    with replay(image_folder, rate_fps=20, loop=True) as paced:
        started = time.monotonic()
        for _ in range(7):
            paced.read()
        paced_s = time.monotonic() - started
        time.sleep(0.3)  # a slow consumer gets no burst of catch-up frames afterwards
        paced.read()
        gap_start = time.monotonic()
        paced.read()
        gap_s = time.monotonic() - gap_start
    assert paced_s >= 6 / 20 * 0.9, "7 frames at 20 frames/s need at least 0.3 s"
    assert gap_s >= 0.8 / 20
    with replay(image_folder, loop=True) as unpaced:
        started = time.monotonic()
        for _ in range(20):
            unpaced.read()
        assert time.monotonic() - started < 6 / 20, "rate_fps=0 must not sleep"


@pytest.mark.parametrize("kind", ["missing", "empty", "not-a-video"])
def test_bad_paths_are_unavailable(tmp_path: Path, kind: str) -> None:
    path = tmp_path / kind
    if kind == "empty":
        path.mkdir()
    elif kind == "not-a-video":
        path = tmp_path / "clip.mp4"
        path.write_bytes(b"definitely not a video")
    with pytest.raises(SourceUnavailableError, match=str(path.name)):
        replay(path).open()


def test_read_before_open_and_close_twice(image_folder: Path) -> None:
    source = replay(image_folder)
    with pytest.raises(SourceError, match="before open"):
        source.read()
    source.open()
    source.read()
    source.close()
    source.close()
    with pytest.raises(SourceError):
        source.read()


def test_bundled_demo_clip_replays() -> None:
    demo = REPO / "appliance" / "defaults" / "demo.mp4"
    if not demo.is_file():
        pytest.fail("appliance/defaults/demo.mp4 is missing: run scripts/make_demo_clip.py")
    with replay(demo) as source:
        frames = []
        with pytest.raises(EndOfStreamError):
            while True:
                frames.append(source.read())
    assert 40 <= len(frames) <= 80
    assert frames[0].image.shape[2] == 3
    assert 320 <= max(frames[0].image.shape[:2]) <= 416
