"""Bearer-token access to the API.

Control endpoints always need ``Authorization: Bearer <token>``; read endpoints need it only with
``api.protect_reads``, and then also accept the ``layerwatch_token`` cookie the web page sets, because
``<img>``, MJPEG and ``EventSource`` requests cannot carry a header (control never takes the cookie, so a
page on another site cannot press a button). A wrong or missing token is a 401; the token itself is never
returned or logged.

The token: ``api.token`` (or the systemd credential ``api_token``), else the one in
``<state_dir>/api_token``, generated (``secrets.token_urlsafe``) and written there with mode 0600 at the
first start. This module holds it without importing FastAPI (the service builds its sinks before the web
stack loads, on the server's thread); the FastAPI dependencies are in :mod:`appliance.api.access`.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from appliance.config.api import ApiConfig
from appliance.state_files import atomic_write_text

logger = logging.getLogger(__name__)

TOKEN_FILE = "api_token"
COOKIE = "layerwatch_token"


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

    def valid(self, candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), self._token)
