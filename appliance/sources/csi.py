"""The Raspberry Pi camera (CSI ribbon cable) through picamera2.

picamera2 exists only on a Raspberry Pi with libcamera, so it is imported inside :meth:`open`;
everywhere else the rest of Layerwatch runs, and a CSI camera gives a
:class:`~appliance.errors.SourceDependencyError` that says what to install.

The camera runs one video configuration with two streams, so the ISP does the work:

- ``lores``: YUV420 at the model's input size (``lores_size``, else the ``analysis_size`` the
  detector asks for, else 320x240); converted to BGR it becomes :attr:`Frame.image`.
- ``main``: ``RGB888`` at ``main_size`` for the evidence snapshot. libcamera's ``RGB888`` is stored
  B, G, R per pixel, which is already OpenCV's BGR order; it becomes :attr:`Frame.evidence`.

``read()`` takes one completed request (both streams of the same instant) with
``capture_request(wait=timeout, flush=True)``: ``flush`` skips requests that completed before the
call, so a frame is never older than the read, and ``wait`` bounds the wait in seconds (a timeout
raises :class:`~appliance.errors.SourceFrozenError`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np

from appliance.config.sources import CsiSourceConfig
from appliance.errors import SourceDependencyError, SourceError, SourceFrozenError, SourceUnavailableError
from appliance.sources.base import Frame, FrameSource, SourceState

logger = logging.getLogger(__name__)

DEFAULT_LORES_SIZE = (320, 240)
INSTALL_HINT = (
    "the CSI camera needs picamera2, which could not be imported ({error}). "
    "On Raspberry Pi OS: `sudo apt install python3-picamera2` and create the virtualenv with "
    "`python3 -m venv --system-site-packages`; on other aarch64 Linux: `pip install layerwatch[pi]` "
    "(needs libcamera). On a PC use an rtsp, usb, http or replay source instead."
)


def _even(size: tuple[int, int]) -> tuple[int, int]:
    """YUV420 needs even widths and heights; round down (minimum 2 px)."""
    return (max(2, size[0] // 2 * 2), max(2, size[1] // 2 * 2))


def yuv420_to_bgr(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Convert a picamera2 YUV420 (I420) array of shape (height*3/2, stride) to BGR of ``size``
    (width, height), dropping the row padding libcamera may add."""
    width, height = size
    stride = array.shape[1]
    if stride != width:
        # Planes are laid out one after the other: Y (height rows), then U and V (height/4 rows each
        # of full stride, i.e. height/2 rows of half stride). Repack without the padding.
        flat = array.reshape(-1)
        y = flat[: height * stride].reshape(height, stride)[:, :width]
        chroma = flat[height * stride :].reshape(height, stride // 2)[:, : width // 2]
        u, v = chroma[: height // 2], chroma[height // 2 :]
        array = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(height * 3 // 2, width)
    return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_YUV2BGR_I420)


class CsiSource(FrameSource):
    """A Raspberry Pi camera module read through picamera2 (``lores`` for analysis, ``main`` for
    evidence)."""

    kind = "csi"

    def __init__(self, name: str, config: CsiSourceConfig, analysis_size: tuple[int, int] | None = None):
        super().__init__(name)
        self.config = config
        self.lores_size = _even(config.lores_size or analysis_size or DEFAULT_LORES_SIZE)
        self.main_size = tuple(config.main_size)
        self._camera: Any = None
        self._sequence = 0

    def open(self) -> None:
        """Import picamera2, configure the two streams and start the camera.

        Raises :class:`SourceDependencyError` without picamera2 and :class:`SourceUnavailableError`
        when libcamera cannot open the camera.
        """
        if self._camera is not None:
            return
        try:
            from picamera2 import Picamera2
        except ImportError as exc:  # no picamera2, or no libcamera under it
            raise SourceDependencyError(f"camera {self.name!r}: " + INSTALL_HINT.format(error=exc)) from exc
        try:
            camera = Picamera2(self.config.camera_num)
        except Exception as exc:  # libcamera raises IndexError/RuntimeError for a missing camera
            raise SourceUnavailableError(
                f"camera {self.name!r}: no CSI camera {self.config.camera_num} "
                f"({type(exc).__name__}: {exc}); check the ribbon cable and `rpicam-hello --list-cameras`"
            ) from exc
        try:
            config = camera.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": "YUV420"},
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:
            camera.close()
            raise SourceUnavailableError(
                f"camera {self.name!r}: cannot start CSI camera {self.config.camera_num} "
                f"(main {self.main_size}, lores {self.lores_size}): {type(exc).__name__}: {exc}"
            ) from exc
        self._camera = camera
        self.status.state = SourceState.CONNECTING
        logger.info(
            "camera %s: CSI camera %d started, main %s, lores %s",
            self.name,
            self.config.camera_num,
            self.main_size,
            self.lores_size,
        )

    def read(self, timeout_s: float | None = None) -> Frame:
        """Capture the next frame, waiting up to ``timeout_s`` seconds (default ``frozen_after_s``)."""
        if self._camera is None:
            raise SourceError(f"camera {self.name!r}: read() before open() or after close()")
        wait_s = self.config.frozen_after_s if timeout_s is None else timeout_s
        try:
            request = self._camera.capture_request(wait=wait_s, flush=True)
        except TimeoutError as exc:
            self.status.state = SourceState.FROZEN
            self.status.last_error = f"no frame within {wait_s:g} s"
            raise SourceFrozenError(
                f"camera {self.name!r}: CSI camera gave no frame within {wait_s:g} s"
            ) from exc
        try:
            lores = request.make_array("lores")
            main = request.make_array("main")
        finally:
            request.release()
        image = yuv420_to_bgr(lores, self.lores_size)
        evidence = np.ascontiguousarray(main[:, :, :3])
        frame = Frame(image=image, timestamp=time.time(), sequence=self._sequence, evidence=evidence)
        self._sequence += 1
        self._mark_frame()
        return frame

    def close(self) -> None:
        """Stop and close the camera. Idempotent."""
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()
        self.status.state = SourceState.CLOSED
