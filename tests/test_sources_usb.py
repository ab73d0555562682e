"""The USB (V4L2) source without a camera.

This machine has no ``/dev/video*`` device and cannot load ``v4l2loopback``, so a capture from a
real V4L2 device is not tested here; tests marked ``device`` would need one. What is tested: a
missing device, a path that is not a camera, the index-to-path mapping and the reconnect loop.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.config.sources import UsbSourceConfig
from appliance.errors import SourceError, SourceUnavailableError
from appliance.sources import build_source
from appliance.sources.base import SourceState
from appliance.sources.usb import UsbSource, device_path


def usb_source(device: int | str, **fields: object) -> UsbSource:
    source = build_source("printer", UsbSourceConfig.model_validate({"device": device, **fields}))
    assert isinstance(source, UsbSource)
    return source


def free_video_index() -> int:
    return next(i for i in range(60, 100) if not os.path.exists(f"/dev/video{i}"))


def test_device_path() -> None:
    assert device_path(0) == "/dev/video0"
    assert device_path("3") == "/dev/video3"
    assert device_path("/dev/layerwatch-cam") == "/dev/layerwatch-cam"


@pytest.mark.parametrize("as_path", [False, True])
def test_missing_device_is_unavailable_and_named(as_path: bool) -> None:
    index = free_video_index()
    device: int | str = f"/dev/video{index}" if as_path else index
    started = time.monotonic()
    with usb_source(device) as source:
        with pytest.raises(SourceUnavailableError, match=rf"/dev/video{index} does not exist"):
            source.read(timeout_s=3)
        assert time.monotonic() - started < 1.0
        assert source.status.state == SourceState.OFFLINE
    assert source.status.state == SourceState.CLOSED


def test_a_file_that_is_not_a_camera(tmp_path: Path) -> None:
    fake = tmp_path / "video0"
    fake.write_bytes(b"")
    source = usb_source(str(fake), width=640, height=480, fps=15)
    with source, pytest.raises(SourceUnavailableError, match="cannot be opened as a camera"):
        source.read(timeout_s=3)


def test_keeps_retrying_so_a_replugged_camera_recovers() -> None:
    source = usb_source(free_video_index())
    source.open()
    time.sleep(1.0)  # first retry after 0.5 s
    assert source.status.reconnects >= 1
    started = time.monotonic()
    source.close()
    source.close()
    assert time.monotonic() - started < 1.5
    with pytest.raises(SourceError):
        source.read(timeout_s=0.1)


@pytest.mark.device
@pytest.mark.skipif(os.environ.get("LAYERWATCH_DEVICE_TESTS") != "1", reason="needs a real V4L2 camera")
def test_real_camera_delivers_frames() -> None:
    with usb_source(os.environ.get("LAYERWATCH_USB_DEVICE", "0"), width=640, height=480) as source:
        frame = source.read(timeout_s=10)
        assert frame.image.ndim == 3
        assert source.read(timeout_s=5).sequence > frame.sequence
