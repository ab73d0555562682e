"""Replay a video file or a folder of images as if it were a camera.

Used by the demo (the bundled ``appliance/defaults/demo.mp4``), the benchmark and the evaluation.

- ``path`` is a video file OpenCV can decode (``.mp4``, ``.mkv``, ``.avi``...) or a folder whose
  ``.jpg``/``.jpeg``/``.png`` files are played in sorted file-name order (sub-folders are ignored).
- ``rate_fps`` paces ``read()``: frames are handed out at most that many per second (the call
  sleeps until the next frame is due). A consumer slower than the rate gets every frame anyway,
  in order, just later: a replay never skips frames, unlike a live camera. ``0`` means as fast as
  the caller reads.
- At the end, ``loop`` starts again from the first frame; without it ``read()`` raises
  :class:`~appliance.errors.EndOfStreamError` and the state becomes ``ENDED``.

A folder image that cannot be decoded is skipped with a warning (counted in ``status.dropped``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from appliance.config.sources import ReplaySourceConfig
from appliance.errors import EndOfStreamError, SourceError, SourceUnavailableError
from appliance.sources.base import Frame, FrameSource, SourceState

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


def list_images(folder: Path) -> list[Path]:
    """The images of ``folder`` (not recursive) in sorted name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class ReplaySource(FrameSource):
    """Frames from a file or folder, in order, paced to ``rate_fps`` (0 = unpaced)."""

    kind = "replay"

    def __init__(self, name: str, config: ReplaySourceConfig):
        super().__init__(name)
        self.config = config
        self.path = Path(config.path)
        self._images: list[Path] | None = None  # folder mode
        self._index = 0
        self._video: cv2.VideoCapture | None = None  # file mode
        self._sequence = 0
        self._next_due = 0.0  # monotonic time the next frame may be handed out
        self._opened = False

    def open(self) -> None:
        """Check the path and open the file or list the folder.

        Raises :class:`SourceUnavailableError` for a missing path, an empty folder or a file OpenCV
        cannot open.
        """
        if self._opened:
            return
        if self.path.is_dir():
            self._images = list_images(self.path)
            if not self._images:
                raise SourceUnavailableError(
                    f"replay {self.name!r}: folder {self.path} holds no .jpg/.jpeg/.png images"
                )
            logger.info("replay %s: %d images from %s", self.name, len(self._images), self.path)
        elif self.path.is_file():
            self._video = self._open_video()
            logger.info(
                "replay %s: %s, %d frames at %.1f fps in the file",
                self.name,
                self.path,
                int(self._video.get(cv2.CAP_PROP_FRAME_COUNT)),
                self._video.get(cv2.CAP_PROP_FPS),
            )
        else:
            raise SourceUnavailableError(f"replay {self.name!r}: {self.path} does not exist")
        self._opened = True
        self._next_due = time.monotonic()
        self.status.state = SourceState.CONNECTING

    def _open_video(self) -> cv2.VideoCapture:
        video = cv2.VideoCapture(str(self.path))
        if not video.isOpened():
            video.release()
            raise SourceUnavailableError(f"replay {self.name!r}: OpenCV cannot open video {self.path}")
        return video

    def read(self, timeout_s: float | None = None) -> Frame:
        """Return the next frame, sleeping first if ``rate_fps`` says it is not due yet.

        ``timeout_s`` is not needed (a replay never waits for a camera) and is ignored.
        Raises :class:`EndOfStreamError` at the end without ``loop``.
        """
        if not self._opened:
            raise SourceError(f"replay {self.name!r}: read() before open() or after close()")
        if self.status.state == SourceState.ENDED:
            raise EndOfStreamError(f"replay {self.name!r}: end of {self.path}")
        image = self._next_image()
        if image is None and self.config.loop:
            self._rewind()
            image = self._next_image()
        if image is None:
            self.status.state = SourceState.ENDED
            logger.info("replay %s: end of %s after %d frames", self.name, self.path, self._sequence)
            raise EndOfStreamError(f"replay {self.name!r}: end of {self.path} after {self._sequence} frames")
        self._pace()
        frame = Frame(image=image, timestamp=time.time(), sequence=self._sequence)
        self._sequence += 1
        self._mark_frame()
        return frame

    def _pace(self) -> None:
        if self.config.rate_fps <= 0:
            return
        now = time.monotonic()
        if self._next_due > now:
            time.sleep(self._next_due - now)
            now = self._next_due
        # A slow consumer does not earn a burst of catch-up frames later.
        self._next_due = now + 1.0 / self.config.rate_fps

    def _next_image(self) -> np.ndarray | None:
        """The next decodable frame, or ``None`` at the end."""
        if self._video is not None:
            ok, image = self._video.read()
            return image if ok else None
        assert self._images is not None
        while self._index < len(self._images):
            path = self._images[self._index]
            self._index += 1
            decoded = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if decoded is not None:
                return decoded
            self.status.dropped += 1
            logger.warning("replay %s: skipping %s: not a decodable image", self.name, path.name)
        return None

    def _rewind(self) -> None:
        self._index = 0
        if self._video is not None:  # reopening is exact where seeking to frame 0 may not be
            self._video.release()
            self._video = self._open_video()
        logger.debug("replay %s: looping", self.name)

    def close(self) -> None:
        """Release the video file. Idempotent."""
        video, self._video = self._video, None
        if video is not None:
            video.release()
        self._opened = False
        self._images = None
        self.status.state = SourceState.CLOSED
