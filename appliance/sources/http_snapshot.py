"""HTTP(S) snapshot cameras: one GET returns one JPEG or PNG.

Foscam CGI (``/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2``), OctoPrint/mjpg-streamer
(``/?action=snapshot``), many IP cameras and ESP32-CAM boards work this way. Every ``read()``
fetches a fresh picture, so the frame is always as new as the request; there is no thread.

- Authentication: ``none``, ``basic`` or ``digest`` (:mod:`requests.auth`), with ``username`` and
  ``password`` from the config. Credentials in the URL itself work too.
- Each request may take ``timeout_s`` seconds (connect and each read; a ``timeout_s`` passed to
  ``read()`` also caps the whole call). A failed request (connection error, timeout, HTTP 5xx or
  429, a body that is not an image) is retried ``retries`` times, ``retry_delay_s`` seconds apart;
  401/403/404 are not retried because asking again will not help.
- The body (read up to ``SNAPSHOT_MAX_BYTES``) is decoded with ``cv2.imdecode`` once its header (PNG,
  JPEG or BMP) says it has at most ``SNAPSHOT_MAX_PIXELS`` (:mod:`appliance.image_guard`: no
  decompression bomb); a body that is not such an image raises :class:`~appliance.errors.SourceError`
  (after the retries), never crashes.
- The password, the URL's user info and secret-looking query values (``pwd=``, ``token=``...) are
  never logged: messages use the redacted URL and scrub library error texts.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import requests
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth

from appliance.config.sources import HttpSnapshotSourceConfig
from appliance.errors import SourceError, SourceUnavailableError
from appliance.image_guard import ImageTooLargeError, decode_image, image_size
from appliance.sources.base import Frame, FrameSource, SourceState
from appliance.sources.redact import redact_text, redact_url, url_secrets

logger = logging.getLogger(__name__)

USER_AGENT = "layerwatch-snapshot/1"
_NOT_RETRIED = {401: "check username, password and auth scheme", 403: "access denied", 404: "wrong path"}


#: the most pixels a snapshot may have (8K): its camera's size is only known from its answers, so the
#: limit against a decompression bomb (appliance.image_guard) is the largest camera there is
SNAPSHOT_MAX_PIXELS = 7680 * 4320
SNAPSHOT_MAX_BYTES = 32 * 1024 * 1024  # the most of an answer that is read (an 8K JPEG is a few MB)


class _BadImageError(Exception):
    """The body was received but is not a decodable image."""


class _RefusedError(SourceUnavailableError):
    """The server answered with a status that retrying will not change (401, 403, 404)."""


class HttpSnapshotSource(FrameSource):
    """A camera that serves one still image per HTTP GET."""

    kind = "http"

    def __init__(self, name: str, config: HttpSnapshotSourceConfig):
        super().__init__(name)
        self.config = config
        self._redacted = redact_url(config.url)
        password = config.password.get_secret_value() if config.password else None
        self._secrets = [*url_secrets(config.url), password]
        self._session: requests.Session | None = None
        self._sequence = 0

    def _auth(self) -> AuthBase | None:
        cfg = self.config
        if cfg.auth == "none":
            return None
        user = cfg.username or ""
        password = cfg.password.get_secret_value() if cfg.password else ""
        return HTTPBasicAuth(user, password) if cfg.auth == "basic" else HTTPDigestAuth(user, password)

    def open(self) -> None:
        """Prepare the HTTP session (no request is made until the first ``read()``)."""
        if self._session is not None:
            return
        session = requests.Session()
        session.auth = self._auth()
        session.verify = self.config.verify_tls
        session.headers["User-Agent"] = USER_AGENT
        self._session = session
        self.status.state = SourceState.CONNECTING

    def read(self, timeout_s: float | None = None) -> Frame:
        """Fetch and decode one snapshot, retrying failed requests as configured.

        Raises :class:`SourceUnavailableError` when the camera cannot be reached or refuses the
        request, :class:`SourceError` when it answers with something that is not an image.
        """
        if self._session is None:
            raise SourceError(f"camera {self.name!r}: read() before open() or after close()")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        attempts = 1 + self.config.retries
        error: SourceError | None = None
        for attempt in range(1, attempts + 1):
            per_request = self.config.timeout_s
            if deadline is not None:
                per_request = min(per_request, deadline - time.monotonic())
                if per_request <= 0:
                    break
            try:
                image = self._fetch(self._session, per_request)
            except _BadImageError as exc:
                error = SourceError(f"camera {self.name!r}: {self._redacted} {exc}")
            except _RefusedError as exc:
                error = exc
                break
            except SourceUnavailableError as exc:
                error = exc
            else:
                return self._deliver(image)
            logger.debug("camera %s: attempt %d/%d failed: %s", self.name, attempt, attempts, error)
            if attempt < attempts:
                self.status.extra["retries"] = self.status.extra.get("retries", 0) + 1
                delay = self.config.retry_delay_s
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - time.monotonic()))
                time.sleep(delay)
        if error is None:
            error = SourceUnavailableError(
                f"camera {self.name!r}: {self._redacted}: no answer within {timeout_s:g} s"
            )
        self._failed(error)
        raise error

    def _fetch(self, session: requests.Session, timeout_s: float) -> np.ndarray:
        try:
            response = session.get(self.config.url, timeout=timeout_s, stream=True)
        except requests.Timeout as exc:
            raise SourceUnavailableError(
                f"camera {self.name!r}: {self._redacted}: no answer within {timeout_s:g} s"
            ) from exc
        except requests.RequestException as exc:
            detail = redact_text(str(exc), self._secrets)
            raise SourceUnavailableError(
                f"camera {self.name!r}: {self._redacted}: {type(exc).__name__}: {detail}"
            ) from exc
        with response:  # streamed: the body is read up to SNAPSHOT_MAX_BYTES, never more
            body = self._body(response, timeout_s)
        kind = response.headers.get("Content-Type", "no Content-Type")
        try:  # the header first: a picture larger than any camera's is refused before it is decoded
            return decode_image(body, SNAPSHOT_MAX_PIXELS, f"camera {self.name!r}")
        except ImageTooLargeError as exc:
            if image_size(body) is not None:
                raise _BadImageError(str(exc)) from None
        except ValueError:
            pass
        raise _BadImageError(f"returned {len(body)} bytes of {kind} that do not decode as an image")

    def _body(self, response: requests.Response, timeout_s: float) -> bytes:
        status = response.status_code
        if status >= 400:
            reason = redact_text(response.reason or "", self._secrets)
            message = f"camera {self.name!r}: {self._redacted}: HTTP {status} {reason}"
            if status in _NOT_RETRIED:
                raise _RefusedError(f"{message} ({_NOT_RETRIED[status]})")
            raise SourceUnavailableError(message)
        body = bytearray()
        try:
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > SNAPSHOT_MAX_BYTES:
                    raise _BadImageError(f"returned more than {SNAPSHOT_MAX_BYTES} bytes: not a snapshot")
        except requests.RequestException as exc:
            detail = redact_text(str(exc), self._secrets)
            raise SourceUnavailableError(
                f"camera {self.name!r}: {self._redacted}: {type(exc).__name__} while reading: {detail}"
            ) from exc
        return bytes(body)

    def _deliver(self, image: np.ndarray) -> Frame:
        frame = Frame(image=image, timestamp=time.time(), sequence=self._sequence)
        self._sequence += 1
        self._mark_frame()
        self.status.last_error = None
        return frame

    def _failed(self, error: SourceError) -> None:
        if self.status.state != SourceState.OFFLINE or self.status.last_error != str(error):
            logger.warning("%s", error)
        self.status.state = SourceState.OFFLINE
        self.status.last_error = str(error)

    def close(self) -> None:
        """Close the HTTP session. Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
        self.status.state = SourceState.CLOSED
