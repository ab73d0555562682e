"""One HTTP POST for a notifier, with the answer sorted into delivered / retry later / refused.

* 2xx: delivered.
* 429: :class:`~appliance.errors.DeliveryError` carrying the peer's wait, from the JSON body
  (Discord ``retry_after``, Telegram ``parameters.retry_after``, in seconds) or the
  ``Retry-After`` header.
* 5xx, 408, a timeout or a refused connection: :class:`~appliance.errors.DeliveryError` (the outbox
  retries with backoff).
* any other 4xx: :class:`~appliance.errors.DeliveryRejectedError` (retrying would not help).

Error texts name the channel and the status, never the URL: a webhook URL or a bot token is the
credential itself, and ``requests`` puts the URL into its exception messages.
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from appliance.errors import DeliveryError, DeliveryRejectedError

logger = logging.getLogger(__name__)

MAX_PEER_WAIT_S = 3600.0  # a peer asking for longer than this is capped


def _peer_wait(response: requests.Response) -> float | None:
    wait: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        wait = body.get("retry_after")
        parameters = body.get("parameters")
        if wait is None and isinstance(parameters, dict):
            wait = parameters.get("retry_after")
    if wait is None:
        wait = response.headers.get("Retry-After")
    try:
        return min(MAX_PEER_WAIT_S, max(0.0, float(wait))) if wait is not None else None
    except (TypeError, ValueError):
        return None


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        text = body.get("description") or body.get("message") or ""
        return str(text)[:200]
    return ""


def post(
    session: requests.Session, url: str, channel: str, timeout_s: float, **kwargs: Any
) -> requests.Response:
    """POST and classify; returns the response only when the peer accepted the message."""
    try:
        response = session.post(url, timeout=timeout_s, **kwargs)
    except requests.Timeout:
        raise DeliveryError(f"{channel}: no answer within {timeout_s:.0f} s") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"{channel}: {type(exc).__name__} (peer unreachable)") from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    reason = _reason(response)
    detail = f"{channel}: HTTP {status}" + (f" ({reason})" if reason else "")
    if status == 429:
        raise DeliveryError(detail, retry_after_s=_peer_wait(response))
    if status >= 500 or status == 408:
        raise DeliveryError(detail)
    raise DeliveryRejectedError(detail)
