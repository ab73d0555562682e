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


def test_a_snapshot_camera_answering_a_pixel_bomb_is_a_source_error() -> None:
    """An HTTP snapshot camera (a local server on 127.0.0.1) answering a 12000 x 12000 PNG: refused from
    its header (a SourceError naming the size), never decoded; an endless answer is cut at the byte cap."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from appliance.config.sources import HttpSnapshotSourceConfig
    from appliance.errors import SourceError
    from appliance.sources import build_source, http_snapshot

    bomb = pixel_bomb()
    answers = {"/bomb.png": bomb, "/huge.jpg": b"\xff\xd8" + b"\0" * (3 * 1024 * 1024)}

    class Camera(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = answers[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    limit = http_snapshot.SNAPSHOT_MAX_BYTES
    try:
        config = HttpSnapshotSourceConfig(url=f"{base}/bomb.png", retries=0, timeout_s=5.0)
        with build_source("printer", config) as source, pytest.raises(SourceError, match="12000 x 12000"):
            source.read()
        http_snapshot.SNAPSHOT_MAX_BYTES = 1024 * 1024
        config = HttpSnapshotSourceConfig(url=f"{base}/huge.jpg", retries=0, timeout_s=5.0)
        with build_source("printer", config) as source, pytest.raises(SourceError, match="more than"):
            source.read()
    finally:
        http_snapshot.SNAPSHOT_MAX_BYTES = limit
        server.shutdown()
        server.server_close()
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024 < 50
