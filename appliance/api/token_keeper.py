"""The generated API token when the disk is full at the first start: kept, said where, stored later.

Without ``api.token`` (or the credential ``api_token``) the token is generated at the first start into
``<state_dir>/api_token`` (:func:`appliance.api.auth.resolve_token`). On a full disk that write fails, and
issue 33 found control impossible until a restart: the token existed only inside the service and nobody
could learn it. :func:`prepare_token` (called by :func:`appliance.api.create_sinks` before the API sink is
built) generates it first; when it cannot be stored it

* hands it to the API as if configured, so the running service accepts it;
* logs where it will be (``API token held in memory: it goes to <path> as soon as the disk has room``) and
  reports the failed write to the storage health (MQTT state ``problems``, the status light, systemd's
  ``STATUS=``), never the token itself;
* returns a :class:`TokenKeeper` sink that tries the write again every ``RETRY_S`` seconds from the loop's
  tick and, once it succeeds, logs the path and clears the storage problem. The user reads the token
  there, as after any first start.
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from appliance.api.auth import TOKEN_FILE
from appliance.state_files import atomic_write_text

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.decision import Alert, Transition
    from appliance.service.pipeline import FrameResult
    from appliance.service.storage_health import StorageHealth
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)

RETRY_S = 2.0  # how often a token held in memory is tried on disk again
WHAT = "api token"  # the storage-health name of the failed write


class TokenKeeper:
    """An action sink that stores a token held in memory once the disk takes it."""

    def __init__(self, token: str, path: Path, storage: StorageHealth | None):
        self._token = token
        self.path = path
        self.storage = storage
        self.stored = False
        self._last_try = time.monotonic()

    def on_frame(self, result: FrameResult) -> None:
        pass

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        pass

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        pass

    def on_tick(self, now: float) -> None:
        if self.stored or now - self._last_try < RETRY_S:
            return
        self._last_try = now
        self.store()

    def store(self) -> bool:
        """Try the write once; True once the token is on disk."""
        try:
            atomic_write_text(self.path, self._token + "\n", mode=0o600)
        except OSError:
            return False
        self.stored = True
        logger.warning(
            "API token stored in %s now that the disk has room (control endpoints need it)", self.path
        )
        if self.storage is not None:
            self.storage.ok(WHAT)
        return True


def prepare_token(
    config: LayerwatchConfig, context: ServiceContext
) -> tuple[LayerwatchConfig, TokenKeeper | None]:
    """``config`` (with the token set when it is held in memory) and the keeper that stores it, if any."""
    configured = config.api.token
    if configured is not None and configured.get_secret_value().strip():
        return config, None
    path = context.state_dir / TOKEN_FILE
    try:
        if path.read_text().strip():
            return config, None
    except FileNotFoundError:
        pass
    except OSError:
        return config, None  # resolve_token says why
    token = secrets.token_urlsafe(24)
    try:
        atomic_write_text(path, token + "\n", mode=0o600)
    except OSError as exc:
        logger.error("API token held in memory: it goes to %s as soon as the disk has room (%s); until then "
                     "control endpoints need a token nobody can read", path, exc.strerror or exc)  # fmt: skip
        context.storage.failed(WHAT, exc)
        api = config.api.model_copy(update={"token": SecretStr(token)})
        return config.model_copy(update={"api": api}), TokenKeeper(token, path, context.storage)
    logger.warning("API token generated into %s (control endpoints need it)", path)
    return config, None
