"""USB webcams (any V4L2 device) through OpenCV's V4L2 backend.

``device`` is a V4L2 index (``0`` means ``/dev/video0``) or a device path such as
``/dev/video2`` or a stable udev symlink like ``/dev/layerwatch-cam``. The requested
``width``/``height`` (pixels) and ``fps`` (frames per second) are passed to the driver when the
device opens; drivers pick the nearest mode they support, and the delivered size is logged.

It shares the grabber thread of the RTSP source
(:class:`~appliance.sources.grabber.GrabbedSource`): only the newest frame is kept, a camera that
is unplugged is reopened with a doubling backoff (so replugging it recovers), and a device that
stops delivering frames for ``frozen_after_s`` seconds counts as frozen. A device that does not
exist gives :class:`~appliance.errors.SourceUnavailableError` naming the device: the camera is
``camera_offline``, and while it waits between opens the grabber looks for the device path every
second, so a camera that is plugged in (or whose udev symlink appears) is opened at once.
"""

from __future__ import annotations

import logging
import os

import cv2

from appliance.config.sources import UsbSourceConfig
from appliance.errors import SourceUnavailableError
from appliance.sources.grabber import Capture, GrabbedSource

logger = logging.getLogger(__name__)


def device_path(device: int | str) -> str:
    """The ``/dev`` path of a V4L2 index or path (``0`` -> ``/dev/video0``; digits as text count as
    an index)."""
    if isinstance(device, int) or device.isdigit():
        return f"/dev/video{int(device)}"
    return device


class UsbSource(GrabbedSource):
    """A V4L2 webcam. ``open()`` returns at once; the device is opened by the grabber thread."""

    kind = "usb"

    def __init__(self, name: str, config: UsbSourceConfig):
        super().__init__(name, frozen_after_s=config.frozen_after_s)
        self.config = config
        self.path = device_path(config.device)

    @property
    def description(self) -> str:
        return f"V4L2 device {self.path}"

    def _reachable(self) -> bool:
        """The device node (or udev symlink) exists: checked every second while the camera is away."""
        return os.path.exists(self.path)

    def _connect(self) -> Capture:
        if not os.path.exists(self.path):
            raise SourceUnavailableError(
                f"V4L2 device {self.path} does not exist "
                "(is the camera plugged in? `v4l2-ctl --list-devices` lists them)"
            )
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise SourceUnavailableError(
                f"V4L2 device {self.path}: permission denied (add the service user to the 'video' group)"
            )
        params: list[int] = []
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, self.config.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, self.config.height),
            (cv2.CAP_PROP_FPS, self.config.fps),
        ):
            if value is not None:
                params += [prop, round(value)]
        capture = cv2.VideoCapture(self.path, cv2.CAP_V4L2, params)
        if not capture.isOpened():
            capture.release()
            raise SourceUnavailableError(f"V4L2 device {self.path} exists but cannot be opened as a camera")
        logger.info(
            "camera %s: %s delivers %dx%d at %.1f fps",
            self.name,
            self.path,
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
        )
        return capture
