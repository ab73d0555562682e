"""Keep secrets out of every log line, whoever writes it (our code, requests, urllib3, paho,
botocore), as a second line of defence: our own log calls never format a secret in the first place.

Two rules, applied by a log-record factory before any handler sees a record (so they cover every
logger, including ones libraries create later):

- every value passed to :func:`register_secret` (webhook URLs and their paths, bot tokens, API
  keys, broker passwords, AWS keys read from the credentials file or issued by STS) becomes ``***``;
- credential-shaped text that was never registered is masked too: ``Authorization`` and
  ``X-Amz-Security-Token`` header values, SigV4 ``Credential=`` scopes, ``<SecretAccessKey>``-style
  XML elements, their JSON spellings and ``aws_secret_access_key = ...`` lines (botocore logs all of
  these at DEBUG).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
_MIN_LENGTH = 6  # shorter values (a chat id, "admin") would mask ordinary text

_PATTERNS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*b?['\"]?)([^'\"\r\n]+)"),
    re.compile(r"(Credential=)([A-Za-z0-9]+)"),
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,}&]+)"),
    re.compile(r"(?i)(X-Amz-Security-Token=)([^&\s'\"]+)"),
    re.compile(r"(<(?:AccessKeyId|SecretAccessKey|SessionToken)>)([^<]*)"),
    re.compile(
        r"(?i)([\"'](?:accessKeyId|secretAccessKey|sessionToken|aws_secret_access_key|api_key)[\"']\s*:\s*[\"'])"
        r"([^\"']*)"
    ),
    re.compile(r"(?i)(aws_(?:access_key_id|secret_access_key|session_token)\s*=\s*)(\S+)"),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False
_base_factory = logging.getLogRecordFactory()


def redact(text: str) -> str:
    """``text`` with every registered secret and credential-shaped value replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Rewrite a record's message (and traceback text) in place; returns it."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the logger's problem, not ours
        return record
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    return redact_record(_base_factory(*args, **kwargs))


def install() -> None:
    """Route every new log record through :func:`redact_record` (idempotent)."""
    global _installed
    with _lock:
        if not _installed:
            logging.setLogRecordFactory(_factory)
            _installed = True


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and, for a URL, its path) in all log records from now on."""
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        _secrets.add(value)
        if "://" in value:
            path = value.split("://", 1)[1].partition("/")[2]
            if len(path) >= _MIN_LENGTH:
                _secrets.add("/" + path)
    install()
