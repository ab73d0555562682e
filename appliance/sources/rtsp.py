"""RTSP(S) cameras through OpenCV's FFmpeg backend, tuned for low latency.

FFmpeg normally probes a new stream for about two seconds and then plays that backlog, leaving the
picture seconds behind. This source opens with ``analyzeduration;0|probesize;32`` (first frame in
about 0.15 s, no backlog; see ``PLATFORM.md``) and the configured ``rtsp_transport``, passed the
only way OpenCV accepts them: the ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` environment variable, set just
before each open under a lock because it is process-wide. Open and read timeouts go through the
``params`` list of ``cv2.VideoCapture`` (``CAP_PROP_OPEN_TIMEOUT_MSEC``/``CAP_PROP_READ_TIMEOUT_MSEC``);
FFmpeg gives up on a silent stream after about three read timeouts.

Before handing the URL to FFmpeg the source makes a plain TCP connection to the server, so that
"nothing is listening", "no answer" and "cannot resolve" are told apart in the error message,
and a dead server never holds the options lock for the whole open timeout.

The grabber thread, latest-frame hand-off, reconnect backoff and frozen-stream detection come from
:class:`~appliance.sources.grabber.GrabbedSource`. The URL may contain credentials: only its
redacted form (``rtsp://***@host/path``) is ever logged or put into an error.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import cv2

from appliance.config.sources import RtspSourceConfig
from appliance.errors import SourceUnavailableError
from appliance.sources.grabber import Capture, GrabbedSource
from appliance.sources.redact import redact_url

logger = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
LOW_LATENCY_OPTIONS = "analyzeduration;0|probesize;32"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
PROBE_TIMEOUT_S = 0.5  # the TCP probe between reconnect attempts

_options_lock = threading.Lock()
"""Serialises "set the environment variable, open the capture" across all RTSP cameras."""


def ffmpeg_capture_options(transport: str) -> str:
    """The ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` value for an RTSP open (``key;value`` pairs joined by
    ``|``)."""
    return f"rtsp_transport;{transport}|{LOW_LATENCY_OPTIONS}"


class RtspSource(GrabbedSource):
    """An RTSP camera. ``open()`` returns at once; frames follow within about the open timeout."""

    kind = "rtsp"

    def __init__(self, name: str, config: RtspSourceConfig):
        super().__init__(
            name,
            frozen_after_s=config.frozen_after_s,
            reconnect_min_s=config.reconnect_min_s,
            reconnect_max_s=config.reconnect_max_s,
            read_timeout_s=config.read_timeout_s,
        )
        self.config = config
        self._redacted = redact_url(config.url)
        parts = urlsplit(config.url)
        self._host = parts.hostname or ""
        self._port = parts.port or DEFAULT_PORTS.get(parts.scheme, 554)

    @property
    def description(self) -> str:
        return self._redacted

    def _connect(self) -> Capture:
        self._probe_server()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            round(self.config.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            round(self.config.read_timeout_s * 1000),
        ]
        started = time.monotonic()
        with _options_lock:
            previous = os.environ.get(FFMPEG_OPTIONS_ENV)
            os.environ[FFMPEG_OPTIONS_ENV] = ffmpeg_capture_options(self.config.transport)
            try:
                capture = cv2.VideoCapture(self.config.url, cv2.CAP_FFMPEG, params)
            finally:
                if previous is None:
                    os.environ.pop(FFMPEG_OPTIONS_ENV, None)
                else:
                    os.environ[FFMPEG_OPTIONS_ENV] = previous
        if not capture.isOpened():
            capture.release()
            took_s = time.monotonic() - started
            if took_s < 0.9 * self.config.open_timeout_s:
                why = "refused the stream (wrong path or credentials, or a codec FFmpeg cannot decode?)"
            else:
                why = f"sent no picture within the open timeout of {self.config.open_timeout_s:g} s"
            raise SourceUnavailableError(f"{self._redacted}: the server at {self._host}:{self._port} {why}")
        return capture

    def _reachable(self) -> bool:
        """Whether the server accepts a TCP connection within ``PROBE_TIMEOUT_S`` (the cheap check
        between reconnect attempts; no RTSP is spoken)."""
        try:
            with socket.create_connection((self._host, self._port), timeout=PROBE_TIMEOUT_S):
                return True
        except OSError:
            return False

    def _probe_server(self) -> None:
        """Fail fast, with a precise reason, when nothing answers on the server's TCP port."""
        where = f"{self._host}:{self._port}"
        try:
            with socket.create_connection((self._host, self._port), timeout=self.config.open_timeout_s):
                pass
        except socket.gaierror as exc:
            raise SourceUnavailableError(f"{self._redacted}: cannot resolve host {self._host!r}") from exc
        except ConnectionRefusedError as exc:
            raise SourceUnavailableError(
                f"{self._redacted}: nothing is listening on {where} (connection refused)"
            ) from exc
        except TimeoutError as exc:
            raise SourceUnavailableError(
                f"{self._redacted}: no answer from {where} within {self.config.open_timeout_s:g} s"
            ) from exc
        except OSError as exc:
            raise SourceUnavailableError(f"{self._redacted}: cannot reach {where}: {exc.strerror}") from exc
