"""The CSI source with a fake ``picamera2`` module: the only mock is at the Picamera2 API edge.

picamera2 cannot run off a Raspberry Pi (it needs libcamera), so these tests put a module named
``picamera2`` into ``sys.modules`` whose ``Picamera2`` records every call and hands out requests
with numpy arrays shaped the way picamera2 shapes them (YUV420 ``lores``: (h*3/2, stride) bytes;
``RGB888`` ``main``: (h, w, 3), stored B, G, R).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from appliance.config.sources import CsiSourceConfig
from appliance.errors import SourceDependencyError, SourceFrozenError, SourceUnavailableError
from appliance.sources import build_source
from appliance.sources.base import SourceState
from appliance.sources.csi import CsiSource, yuv420_to_bgr

GREY_BGR = round((200 - 16) * 255 / 219)  # the fake's Y=200 in BT.601 video range, grey chroma


class FakeRequest:
    def __init__(self, camera: FakePicamera2):
        self.camera = camera
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        cam = self.camera
        if name == "lores":
            width, height = cam.config["lores"]["size"]
            stride = width + cam.lores_padding
            array = np.full((height * 3 // 2, stride), 128, np.uint8)  # grey chroma
            array[:height, :width] = cam.luma  # Y plane
            return array
        width, height = cam.config["main"]["size"]
        return np.full((height, width, 3), (255, 0, 0), np.uint8)  # blue in B, G, R order

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    instances: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0):
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict[str, Any] = {}
        self.requests: list[FakeRequest] = []
        self.capture_kwargs: list[dict[str, Any]] = []
        self.luma = 200
        self.lores_padding = 0
        self.timeout = False
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict[str, Any], lores: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create_video_configuration")
        return {"main": main, "lores": lores, "use_case": "video"}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_request(self, wait: float | None = None, flush: bool | None = None) -> FakeRequest:
        self.capture_kwargs.append({"wait": wait, "flush": flush})
        if self.timeout:
            raise TimeoutError("timed out")
        request = FakeRequest(self)
        self.requests.append(request)
        return request

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePicamera2]]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    yield FakePicamera2


def test_configures_lores_at_the_analysis_size_and_main_for_evidence(
    fake_picamera2: type[FakePicamera2],
) -> None:
    source = build_source("printer", CsiSourceConfig(camera_num=1), analysis_size=(224, 224))
    assert isinstance(source, CsiSource)
    with source:
        camera = fake_picamera2.instances[0]
        assert camera.camera_num == 1
        assert camera.calls == ["create_video_configuration", "configure", "start"]
        assert camera.config["main"] == {"size": (1640, 1232), "format": "RGB888"}
        assert camera.config["lores"] == {"size": (224, 224), "format": "YUV420"}
        first, second = source.read(), source.read()
    assert first.image.shape == (224, 224, 3)
    assert np.abs(first.image.astype(int) - GREY_BGR).max() <= 1
    assert first.evidence is not None and first.evidence.shape == (1232, 1640, 3)
    assert tuple(first.evidence_image[0, 0]) == (255, 0, 0)  # RGB888 is already OpenCV's BGR
    assert (first.sequence, second.sequence) == (0, 1)
    assert all(r.released for r in camera.requests)
    assert camera.capture_kwargs[0] == {"wait": 10.0, "flush": True}
    assert camera.calls[-2:] == ["stop", "close"]
    assert source.status.frames == 2


def test_lores_size_from_config_wins_and_is_made_even(fake_picamera2: type[FakePicamera2]) -> None:
    config = CsiSourceConfig(lores_size=(321, 241), main_size=(640, 480))
    with build_source("printer", config, analysis_size=(224, 224)) as source:
        camera = fake_picamera2.instances[0]
        assert camera.config["lores"]["size"] == (320, 240)
        assert camera.config["main"]["size"] == (640, 480)
        assert source.read().image.shape == (240, 320, 3)


def test_padded_lores_rows_are_cropped(fake_picamera2: type[FakePicamera2]) -> None:
    with build_source("printer", CsiSourceConfig(main_size=(64, 48)), analysis_size=(100, 60)) as source:
        fake_picamera2.instances[0].lores_padding = 28  # libcamera pads rows to 128 bytes
        frame = source.read()
    assert frame.image.shape == (60, 100, 3)
    assert np.abs(frame.image.astype(int) - GREY_BGR).max() <= 1


def test_no_frame_in_time_is_frozen(fake_picamera2: type[FakePicamera2]) -> None:
    with build_source("printer", CsiSourceConfig(main_size=(64, 48))) as source:
        fake_picamera2.instances[0].timeout = True
        with pytest.raises(SourceFrozenError, match=r"within 0\.5 s"):
            source.read(timeout_s=0.5)
        assert source.status.state == SourceState.FROZEN


def test_close_is_idempotent(fake_picamera2: type[FakePicamera2]) -> None:
    source = build_source("printer", CsiSourceConfig(main_size=(64, 48)))
    source.open()
    source.close()
    source.close()
    assert fake_picamera2.instances[0].calls.count("close") == 1
    assert source.status.state == SourceState.CLOSED


def test_missing_camera_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_camera(camera_num: int = 0) -> None:
        raise IndexError("list index out of range")

    module = types.ModuleType("picamera2")
    module.Picamera2 = no_camera  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    with pytest.raises(SourceUnavailableError, match="no CSI camera 0"):
        build_source("printer", CsiSourceConfig()).open()


def test_missing_picamera2_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    source = build_source("printer", CsiSourceConfig())
    with pytest.raises(SourceDependencyError) as info:
        source.open()
    message = str(info.value)
    assert "sudo apt install python3-picamera2" in message
    assert "--system-site-packages" in message
    assert "pip install layerwatch[pi]" in message
    source.close()  # closing a source that never opened is fine


def test_yuv420_conversion_keeps_colour() -> None:
    width, height = 8, 4
    yuv = np.empty((height * 3 // 2, width), np.uint8)
    yuv[:height] = 81  # BT.601 red: Y=81, U=90, V=240
    yuv[height : height + height // 4] = 90
    yuv[height + height // 4 :] = 240
    bgr = yuv420_to_bgr(yuv, (width, height))
    assert bgr.shape == (4, 8, 3)
    b, g, r = (int(v) for v in bgr[0, 0])
    assert r > 200 and g < 40 and b < 40
