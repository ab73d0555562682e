"""Frames saved while a job runs, for its timelapse and its record.

Layout (as printer-realtime-bridge kept it, with the camera for the printer id):
``<images_dir>/<camera>/<job id>/<YYYYmmddTHHMMSS>_<microseconds>_<job id>.jpg``. The names sort by
capture time, so ``ffmpeg -pattern_type glob -i '*.jpg'`` plays them in order. Files are written on
the :class:`FrameWriter`'s own thread (write to a temporary name, rename; no fsync: a frame lost in a
power cut costs nothing), after the :class:`~appliance.history.space.SpaceGuard` said there is room.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.history.space import SpaceGuard

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 16  # frames waiting for the disk; more are dropped (and counted)


def job_folder(images_dir: Path, camera: str, job_id: str) -> Path:
    return images_dir / camera / job_id


def frame_name(timestamp: float, job_id: str) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return f"{moment:%Y%m%dT%H%M%S}_{moment.microsecond:06d}_{job_id}.jpg"


def job_frames(folder: Path) -> list[Path]:
    """The saved frames of one job folder, in capture order."""
    return sorted(p for p in folder.glob("*.jpg") if not p.name.startswith("."))


def write_file(path: Path, data: bytes) -> None:
    """The write seam: temporary file in the same folder, then rename (raises OSError, leaves no temp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class FrameWriter:
    """Saves JPEGs on its own thread; ``save`` never blocks the analysis loop."""

    def __init__(
        self,
        guard: SpaceGuard,
        on_saved: Callable[[str, str, Path], None],
        write: Callable[[Path, bytes], None] = write_file,
    ):
        self.guard = guard
        self.on_saved = on_saved  # (camera, job id, path) after each saved frame
        self.write = write
        self.saved = 0
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, str, Path, bytes] | None] = queue.Queue(QUEUE_FRAMES)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history-frames", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def save(self, camera: str, job_id: str, path: Path, jpeg: bytes) -> bool:
        """Queue one frame; False when it is not saved (no room on disk, or the writer is behind)."""
        if not self.guard.allows(len(jpeg)):
            return False
        try:
            self._queue.put_nowait((camera, job_id, path, jpeg))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued frame is on disk (before a timelapse is made)."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                camera, job_id, path, jpeg = item
                try:
                    self.write(path, jpeg)
                except OSError as exc:
                    self.guard.write_failed(exc)
                    continue
                self.saved += 1
                self.on_saved(camera, job_id, path)
            except Exception as exc:  # one bad frame must not end the writer
                logger.error("history: saving a frame failed: %s", exc, exc_info=True)
            finally:
                self._queue.task_done()
