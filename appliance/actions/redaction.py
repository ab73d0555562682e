"""Keep secrets out of every log line, whoever writes it (our code, requests, urllib3, paho).

Clients that hold a secret (webhook URL, bot token, API key, broker password) call
:func:`register_secret` once; from then on every log record whose text contains it is rewritten
with ``***`` in its place before any handler sees it. This is a second line of defence: our own log
calls never format a secret in the first place (exceptions from ``requests`` are logged by class
name only, because their text carries the URL).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

MASK = "***"
_MIN_LENGTH = 6  # shorter values (a chat id, "admin") would mask harmless text

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False
_base_factory = logging.getLogRecordFactory()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    if _secrets:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
    return record


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and, for a URL, its path) in all log records from now on."""
    global _installed
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        _secrets.add(value)
        if "://" in value:
            path = value.split("://", 1)[1].partition("/")[2]
            if len(path) >= _MIN_LENGTH:
                _secrets.add("/" + path)
        if not _installed:
            logging.setLogRecordFactory(_factory)
            _installed = True
