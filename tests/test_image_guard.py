"""Issue 33 item 3: outside pictures are measured from their header before they are decoded."""

from __future__ import annotations

import resource
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.calibrate import read_image_folder
from appliance.config.sources import CsiSourceConfig, RtspSourceConfig, UsbSourceConfig
from appliance.errors import CalibrationError
from appliance.image_guard import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    camera_pixel_limit,
    decode_image,
    image_size,
)
from tests.test_faults_api_memory import pixel_bomb


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_the_header_gives_the_size(ext: str) -> None:
    image = np.zeros((37, 53, 3), np.uint8)
    ok, data = cv2.imencode(ext, image)
    assert ok
    assert image_size(data.tobytes()) == (53, 37)
    assert decode_image(data.tobytes(), 53 * 37).shape == (37, 53, 3)
    with pytest.raises(ImageTooLargeError, match="53 x 37"):
        decode_image(data.tobytes(), 53 * 37 - 1)


def test_a_pixel_bomb_is_refused_without_decoding() -> None:
    bomb = pixel_bomb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageTooLargeError, match="12000 x 12000"):
        decode_image(bomb, DEFAULT_MAX_PIXELS)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 50  # decoding it would take 432 MB


def test_a_forged_jpeg_header_and_unknown_formats_are_refused() -> None:
    _, data = cv2.imencode(".jpg", np.zeros((20, 20, 3), np.uint8))
    raw = bytearray(data.tobytes())
    sof = next(i for i in range(2, len(raw) - 1) if raw[i] == 0xFF and raw[i + 1] in (0xC0, 0xC2))
    raw[sof + 5 : sof + 9] = bytes([0x75, 0x30, 0x75, 0x30])  # 30000 x 30000
    with pytest.raises(ImageTooLargeError, match="30000 x 30000"):
        decode_image(bytes(raw), DEFAULT_MAX_PIXELS)
    with pytest.raises(ImageTooLargeError, match="not a PNG, JPEG or BMP"):
        decode_image(b"GIF89a" + b"\0" * 40, DEFAULT_MAX_PIXELS)


def test_the_limit_is_the_cameras_largest_frame() -> None:
    usb = UsbSourceConfig(type="usb", device=0, width=640, height=480)
    assert camera_pixel_limit(usb) == 640 * 480
    assert camera_pixel_limit(CsiSourceConfig(type="csi")) == 1640 * 1232
    rtsp = RtspSourceConfig(type="rtsp", url="rtsp://127.0.0.1/s")
    assert camera_pixel_limit(rtsp) == DEFAULT_MAX_PIXELS
    assert camera_pixel_limit(rtsp, [np.zeros((1080, 1920, 3), np.uint8)]) == 1920 * 1080


def test_calibration_skips_a_bomb_among_the_failure_pictures(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(pixel_bomb())
    cv2.imwrite(str(tmp_path / "real.jpg"), np.full((240, 320, 3), 90, np.uint8))
    images = read_image_folder(tmp_path, 320 * 240)
    assert [i.shape for i in images] == [(240, 320, 3)]
    (tmp_path / "real.jpg").unlink()
    with pytest.raises(CalibrationError):
        read_image_folder(tmp_path, 320 * 240)
