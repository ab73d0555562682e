"""The free-space floor: below ``history.min_free_mb`` free on the images folder's file system, nothing
more is saved (frames, timelapses) until space is back, so the disk is never filled.

Crossing the floor is said once each way, in the log and as a device event on the event hub
(``history_saving_stopped`` / ``history_saving_resumed`` with ``free_mb``, ``min_free_mb``, ``path``,
``reason``), which the MQTT sink publishes on ``<prefix>/<device_id>/event``. A write that fails with
ENOSPC (or any OSError) stops saving the same way. The file system is looked at every few seconds
and whenever the bytes saved since the last look could have reached the floor, so a burst of frames
cannot overrun it. Watching and alerting are never affected.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0  # statvfs at most this often
RESUME_MARGIN = 1.1  # saving resumes above floor x this (no flapping at the edge)
MB = 1024 * 1024


class SpaceGuard:
    def __init__(
        self,
        path: Path,
        min_free_mb: float,
        emit: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = path
        self.min_free_bytes = int(min_free_mb * MB)
        self.emit = emit
        self.clock = clock
        self.saving = True
        self._checked_at = -float("inf")
        self._free = 0  # bytes free at the last look, less what was saved since
        self._lock = threading.Lock()
        self.skipped = 0  # saves skipped while stopped

    def free_bytes(self) -> int:
        folder = self.path
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def allows(self, needed_bytes: int = 0) -> bool:
        """True when a save of ``needed_bytes`` keeps the floor. The file system is asked every few
        seconds, and at once whenever the bytes saved since the last look could reach the floor."""
        with self._lock:
            now = self.clock()
            stale = now - self._checked_at >= CHECK_EVERY_S
            if stale or (self.saving and self._free - needed_bytes < self.min_free_bytes):
                self._checked_at = now
                try:
                    self._free = self.free_bytes()
                except OSError as exc:
                    logger.warning("history: cannot read free space of %s: %s", self.path, exc)
                    self._free = 0
                if self.saving and self._free - needed_bytes < self.min_free_bytes:
                    self._stop(self._free, f"free space under the floor of {self.min_free_bytes / MB:.1f} MB")
                elif not self.saving and self._free >= self.min_free_bytes * RESUME_MARGIN + needed_bytes:
                    self._resume(self._free)
            if not self.saving:
                self.skipped += 1
                return False
            self._free -= needed_bytes  # what this save will take, until the next look
            return True

    def write_failed(self, exc: OSError) -> None:
        """A save failed (ENOSPC, EIO, ...): stop saving until the next check finds room."""
        with self._lock:
            if self.saving:
                try:
                    free = self.free_bytes()
                except OSError:
                    free = 0
                self._stop(free, f"write failed: {exc.strerror or exc}")
            self._checked_at = self.clock()

    def _stop(self, free: int, reason: str) -> None:
        self.saving = False
        logger.warning(
            "history: saving stopped (%s, %.1f MB free at %s); watching goes on", reason, free / MB, self.path
        )
        self.emit("history_saving_stopped", self._payload(free, reason))

    def _resume(self, free: int) -> None:
        self.saving = True
        logger.info("history: saving resumed (%.1f MB free at %s)", free / MB, self.path)
        self.emit("history_saving_resumed", self._payload(free, "free space back above the floor"))

    def _payload(self, free: int, reason: str) -> dict[str, Any]:
        return {
            "free_mb": round(free / MB, 2),
            "min_free_mb": round(self.min_free_bytes / MB, 2),
            "path": str(self.path),
            "reason": reason,
            "skipped": self.skipped,
        }
