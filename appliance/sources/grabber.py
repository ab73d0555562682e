"""A frame source fed by a grabber thread that keeps only the newest frame.

Streaming cameras (RTSP, V4L2) produce frames at their own rate whether anybody looks or not, and
OpenCV buffers what nobody reads. :class:`GrabbedSource` runs one daemon thread per camera that
reads frames as fast as they come and keeps only the latest; a frame that is replaced before
:meth:`~GrabbedSource.read` took it is counted in ``status.dropped``. ``read()`` hands out only a
frame newer than the one it returned last, so the detector never analyses a stale, buffered frame
however slow it is.

The thread also owns the connection: when opening fails or the stream stops it marks the source
``OFFLINE``, waits a doubling delay (``reconnect_min_s`` .. ``reconnect_max_s`` seconds, reset after
a connection that delivered frames) and tries again, counting each retry in ``status.reconnects``.
While it waits it probes the server cheaply every ``probe_interval_s`` seconds (a TCP connect, where
the source has a server): a server that comes back ends the wait, so a returning camera is read
within a second or two while a dead one still gets full opens only at the back-off's pace.
A stream that is connected but gives no new frame for ``frozen_after_s`` seconds is ``FROZEN``:
``read()`` raises :class:`~appliance.errors.SourceFrozenError` and asks the thread to reconnect.
A frozen server still answers the probe, so the probe cannot tell when it thaws: after a freeze the
delay between full opens stops doubling at ``FROZEN_RETRY_MAX_S`` (5 s), so a thawed camera is read
within one open cycle (about 5 s + ``frozen_after_s``), not after ``reconnect_max_s``; one full open
per cycle is not hammering a server that accepts connections.

Subclasses only say how to open the capture (:meth:`GrabbedSource._connect`).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from typing import Protocol

import numpy as np

from appliance.errors import SourceError, SourceFrozenError, SourceUnavailableError
from appliance.sources.base import Frame, FrameSource, SourceState

logger = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 1.0
"""How long ``close()`` waits for the grabber thread. A thread blocked inside a read that cannot be
interrupted (OpenCV gives up after about three read timeouts) finishes on its own and then releases
its capture; ``close()`` does not wait for that."""


class Capture(Protocol):
    """What the grabber needs of a capture: ``cv2.VideoCapture`` fits."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


FROZEN_RETRY_MAX_S = 5.0  # the back-off cap between full opens after a freeze (module docstring)


class GrabbedSource(FrameSource):
    """Base of the streaming sources: a grabber thread, latest-frame hand-off, reconnect, freeze
    detection. Times are in seconds."""

    def __init__(
        self,
        name: str,
        *,
        frozen_after_s: float,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        read_timeout_s: float | None = None,
        probe_interval_s: float = 1.0,
    ):
        super().__init__(name)
        self.probe_interval_s = probe_interval_s
        self.frozen_after_s = frozen_after_s
        self.read_timeout_s = read_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = max(reconnect_min_s, reconnect_max_s)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reconnect = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._returned = -1  # sequence of the last frame read() handed out
        self._next_sequence = 0
        self._connected = False
        self._progress_at = 0.0  # monotonic time of the connection or of its last frame

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """How the camera is named in logs and errors, free of secrets (e.g. a redacted URL)."""

    @abc.abstractmethod
    def _connect(self) -> Capture:
        """Open the capture, blocking at most the source's open timeout. Raise
        :class:`SourceUnavailableError` with a message that says what is wrong."""

    # -- the consumer side ------------------------------------------------------------------------

    def open(self) -> None:
        """Start the grabber thread and return at once; the first frame follows in the background."""
        if self._thread is not None and self._thread.is_alive():
            return
        # A fresh stop event per thread: a previous thread still stuck in a read stays stopped.
        self._stop = threading.Event()
        self.status.state = SourceState.CONNECTING
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name=f"grab-{self.name}", daemon=True
        )
        self._thread.start()

    def read(self, timeout_s: float | None = None) -> Frame:
        """Return the newest frame not returned before, waiting up to ``timeout_s`` seconds
        (default ``frozen_after_s``).

        Raises :class:`SourceUnavailableError` at once while the camera is offline (the thread keeps
        reconnecting) or when it is still connecting at the deadline, and
        :class:`SourceFrozenError` when no new frame came in time.
        """
        if self._thread is None or self.status.state == SourceState.CLOSED:
            raise SourceError(f"camera {self.name!r}: read() before open() or after close()")
        wait_s = self.frozen_after_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                latest = self._latest
                if latest is not None and latest.sequence > self._returned:
                    self._returned = latest.sequence
                    return latest
                if self.status.state == SourceState.OFFLINE:
                    raise SourceUnavailableError(f"camera {self.name!r}: {self.status.last_error}")
                if self.status.state == SourceState.FROZEN:
                    raise SourceFrozenError(f"camera {self.name!r}: {self.status.last_error}; reconnecting")
                now = time.monotonic()
                if self._connected and now - self._progress_at >= self.frozen_after_s:
                    self._went_frozen(now - self._progress_at)
                    raise SourceFrozenError(f"camera {self.name!r}: {self.status.last_error}; reconnecting")
                remaining = deadline - now
                if remaining <= 0:
                    break
                if self._connected:
                    remaining = min(remaining, self._progress_at + self.frozen_after_s - now)
                self._cond.wait(max(remaining, 0.001))
            if not self._connected:
                raise SourceUnavailableError(
                    f"camera {self.name!r}: still connecting to {self.description} after {wait_s:g} s"
                )
            raise SourceFrozenError(f"camera {self.name!r}: no new frame within {wait_s:g} s")

    def close(self) -> None:
        """Stop the grabber thread (waiting at most ~1 s) and mark the source closed. Idempotent."""
        self._stop.set()
        with self._cond:
            self.status.state = SourceState.CLOSED
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.debug("camera %s: grabber still inside a blocking read; it exits after it", self.name)

    # -- the grabber thread -----------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        delay = self.reconnect_min_s
        attempt = 0
        frozen = False  # the last connection froze (connected, then silent): FROZEN_RETRY_MAX_S applies
        while not stop.is_set():
            if attempt:
                self.status.reconnects += 1
            attempt += 1
            try:
                capture = self._connect()
            except SourceError as exc:
                self._went_offline(str(exc))
            except Exception as exc:  # OpenCV raises cv2.error on odd input; never kill the thread
                self._went_offline(f"cannot open {self.description}: {type(exc).__name__}")
            else:
                try:
                    frames, silent_s = self._pump(capture, stop)
                finally:
                    capture.release()
                if stop.is_set():
                    break
                if frames:
                    delay = self.reconnect_min_s
                    frozen = False
                if silent_s is None:
                    self._went_offline(f"{self.description}: the stream ended (connection closed)")
                else:
                    self._went_frozen(silent_s)
                    frozen = True
            if self._wait_before_reconnect(stop, delay):
                break
            cap = min(self.reconnect_max_s, FROZEN_RETRY_MAX_S) if frozen else self.reconnect_max_s
            delay = max(self.reconnect_min_s, min(delay * 2, cap))
        with self._cond:
            if stop is self._stop:  # not when a newer open() already runs another thread
                self._connected = False
            self._cond.notify_all()

    def _reachable(self) -> bool | None:
        """A cheap check whether the camera's server answers at all (a TCP connect), or ``None``
        when the source has no such check (a local device). Must return within about a second."""
        return None

    def _wait_before_reconnect(self, stop: threading.Event, delay_s: float) -> bool:
        """Wait ``delay_s`` seconds (the back-off between full opens) before the next attempt,
        probing the server with :meth:`_reachable` every ``probe_interval_s`` seconds meanwhile: a
        server that did not answer and answers again ends the wait at once, so a camera that is
        back is read within about a second. A server that answers the probe all along (it accepts
        but sends nothing, or the stream is frozen) gets no extra full opens. Returns True when the
        source is closing."""
        deadline = time.monotonic() + delay_s
        was_reachable = self._reachable() if delay_s > self.probe_interval_s else None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return stop.is_set()
            if stop.wait(min(self.probe_interval_s, remaining)):
                return True
            if was_reachable is None or deadline - time.monotonic() <= 0:
                continue
            reachable = self._reachable()
            if reachable and not was_reachable:
                logger.info("camera %s: %s answers again; reconnecting now", self.name, self.description)
                return stop.is_set()
            was_reachable = reachable

    def _pump(self, capture: Capture, stop: threading.Event) -> tuple[int, float | None]:
        """Read frames until the stream fails, a reconnect is requested or the source closes.

        Returns the number of frames read and, when the stream froze, for how many seconds it had
        been silent (``None``: it ended or the source closed). A read that failed only after
        blocking for the read timeout, or after ``frozen_after_s`` without a frame, is a freeze: the
        connection was up but the camera sent nothing. A read that fails at once is an ended stream.
        """
        self._reconnect.clear()
        with self._cond:
            self._connected = True
            self._progress_at = time.monotonic()
            if self.status.state != SourceState.CLOSED:
                self.status.state = SourceState.CONNECTING
        logger.info("camera %s: connected to %s", self.name, self.description)
        frames = 0
        while not stop.is_set():
            started = time.monotonic()
            ok, image = capture.read()
            if stop.is_set():
                break
            now = time.monotonic()
            silent_s = now - self._progress_at
            if not ok or image is None:
                blocked = self.read_timeout_s is not None and now - started >= 0.9 * self.read_timeout_s
                return frames, silent_s if blocked or silent_s >= self.frozen_after_s else None
            frames += 1
            self._publish(image)
            if self._reconnect.is_set():  # read() saw the stream frozen while this read blocked
                return frames, silent_s
        return frames, None

    def _publish(self, image: np.ndarray) -> None:
        with self._cond:
            if self.status.state == SourceState.CLOSED:
                return
            if self._latest is not None and self._latest.sequence > self._returned:
                self.status.dropped += 1
            self._latest = Frame(image=image, timestamp=time.time(), sequence=self._next_sequence)
            self._next_sequence += 1
            self._progress_at = time.monotonic()
            self._mark_frame()
            self._cond.notify_all()

    def _went_frozen(self, silent_s: float) -> None:
        """Mark the stream frozen and ask the grabber to reconnect (call with or without the lock)."""
        with self._cond:
            self._connected = False
            was = self.status.state
            if was == SourceState.CLOSED:
                return
            self.status.state = SourceState.FROZEN
            self.status.last_error = (
                f"{self.description} is connected but gave no new frame for {silent_s:.1f} s (frozen)"
            )
            self._reconnect.set()
            self._cond.notify_all()
        if was != SourceState.FROZEN:
            logger.warning("camera %s: %s; reconnecting", self.name, self.status.last_error)

    def _went_offline(self, message: str) -> None:
        with self._cond:
            self._connected = False
            was = self.status.state
            if was == SourceState.CLOSED:
                return
            self.status.state = SourceState.OFFLINE
            self.status.last_error = message
            self._cond.notify_all()
        if was != SourceState.OFFLINE:
            logger.warning("camera %s: %s", self.name, message)
        else:
            logger.debug("camera %s: still offline: %s", self.name, message)
