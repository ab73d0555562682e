"""Token access to the API, and the console's login.

Control endpoints always need the token; read endpoints too with ``api.protect_reads`` (the default: the
live camera, the status and the configuration are not for everyone on the LAN). ``GET /api/`` (health)
and ``GET /metrics`` follow ``api.public_health`` (default open) and ``api.public_metrics`` (default
protected). A request proves it has the token in one of two ways:

* ``Authorization: Bearer <token>`` (scripts, Home Assistant, Prometheus);
* the console's session cookie ``layerwatch_session``, set by ``POST /api/login`` when the user types
  the token in the page: ``HttpOnly`` (no script in the page can read it, so the token is never in
  ``localStorage``) and ``SameSite=Strict`` (a page on another site cannot send it). Its value is an HMAC
  of the token, not the token. Control requests with the cookie must also carry the header
  ``X-Layerwatch-Console: 1``, which a form on another site cannot add. ``POST /api/logout`` signs out.

A wrong or missing token is a 401; the token itself is never returned or logged.

The token: ``api.token`` (or the systemd credential ``api_token``), else the one in
``<state_dir>/api_token``, generated (``secrets.token_urlsafe``) and written there with mode 0600 at the
first start. This module holds it without importing FastAPI (the service builds its sinks before the web
stack loads, on the server's thread); the FastAPI dependencies are in :mod:`appliance.api.access`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from pathlib import Path

from appliance.config.api import ApiConfig
from appliance.state_files import atomic_write_text

logger = logging.getLogger(__name__)

TOKEN_FILE = "api_token"
COOKIE = "layerwatch_session"
CONSOLE_HEADER = "x-layerwatch-console"


def resolve_token(config: ApiConfig, state_dir: Path) -> str:
    """The configured token, else the stored one, else a new one stored with mode 0600."""
    if config.token is not None and config.token.get_secret_value().strip():
        return config.token.get_secret_value().strip()
    path = state_dir / TOKEN_FILE
    try:
        stored = path.read_text().strip()
        if stored:
            return stored
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cannot read the API token file %s: %s", path, exc)
    token = secrets.token_urlsafe(24)
    try:
        atomic_write_text(path, token + "\n", mode=0o600)
        logger.warning("API token generated into %s (control endpoints need it)", path)
    except OSError as exc:
        logger.error("cannot store the generated API token in %s: %s; it lasts until restart", path, exc)
    return token


class TokenAuth:
    def __init__(self, token: str, protect_reads: bool):
        self._token = token.encode()
        self.protect_reads = protect_reads
        self._session = hmac.new(self._token, b"layerwatch console session", hashlib.sha256).hexdigest()

    def valid(self, candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), self._token)

    def session(self) -> str:
        """The session cookie's value: an HMAC of the token (valid until the token changes)."""
        return self._session

    def valid_session(self, candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), self._session.encode())

    def allows_control(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """The control rule on raw ASGI headers (for middleware that runs before the routes): the
        bearer token, or the console's session cookie together with its ``X-Layerwatch-Console`` header."""
        bearer = session = None
        console = False
        for name, raw in headers:
            value = raw.decode("latin-1")
            if name == b"authorization":
                scheme, _, token = value.partition(" ")
                bearer = token.strip() if scheme.lower() == "bearer" else None
            elif name == b"cookie":
                for part in value.split(";"):
                    key, _, cookie = part.strip().partition("=")
                    if key == COOKIE:
                        session = cookie
            elif name == CONSOLE_HEADER.encode():
                console = value.strip() == "1"
        return self.valid(bearer) or (console and self.valid_session(session))
