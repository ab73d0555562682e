"""Keep cloud credentials out of every log line, including botocore's and urllib3's DEBUG output.

At DEBUG, botocore logs the signed request (``Authorization: ... Credential=<access key>/...`` and
``X-Amz-Security-Token``), the canonical request (the session token again) and every response body
(an STS AssumeRole answer *is* a set of credentials). The service keeps those loggers at WARNING,
but a test or an operator may turn them up, so :data:`SECRET_FILTER` rewrites such records:

- every value passed to :func:`register_secret` (keys read from the credentials file, keys issued
  by STS, API keys) is replaced by ``***`` wherever it appears;
- patterns catch what was never registered: the ``Credential=`` part and the whole value of
  ``Authorization`` and ``X-Amz-Security-Token`` headers, ``<SecretAccessKey>``-style XML elements
  and their JSON spellings.

:func:`protect_loggers` attaches the filter to the loggers of botocore, boto3, urllib3 and requests
(filters on a logger apply to that logger's own records, so each one gets it) and to the root
logger's handlers.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_PATTERNS = (
    # Authorization header: scheme kept, credential scope and signature masked
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*b?['\"]?)([^'\"\r\n]+)"),
    re.compile(r"(Credential=)([A-Za-z0-9]+)"),
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,}&]+)"),
    re.compile(r"(?i)(X-Amz-Security-Token=)([^&\s'\"]+)"),
    re.compile(r"(<(?:AccessKeyId|SecretAccessKey|SessionToken)>)([^<]*)"),
    re.compile(
        r"(?i)([\"'](?:accessKeyId|secretAccessKey|sessionToken|aws_secret_access_key|api_key)[\"']\s*:\s*[\"'])([^\"']*)"
    ),
    re.compile(r"(?i)(aws_(?:access_key_id|secret_access_key|session_token)\s*=\s*)(\S+)"),
)
_MIN_SECRET_LEN = 6  # shorter strings would mask ordinary words


class SecretFilter(logging.Filter):
    """Rewrites records that contain a registered secret or a credential-shaped pattern."""

    def __init__(self) -> None:
        super().__init__("layerwatch-secrets")
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        if value and len(value) >= _MIN_SECRET_LEN:
            with self._lock:
                self._secrets.add(value)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's problem, not ours
            return True
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


SECRET_FILTER = SecretFilter()
PROTECTED_PREFIXES = ("botocore", "boto3", "urllib3", "requests", "s3transfer", "appliance.cloud")


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every protected log line from now on."""
    SECRET_FILTER.register(value)


def protect_loggers() -> None:
    """Attach the filter to every existing logger under :data:`PROTECTED_PREFIXES` and to the root
    logger's handlers. Call again after creating clients: libraries create loggers lazily."""
    manager = logging.Logger.manager
    names = [
        n
        for n in list(manager.loggerDict)
        if any(n == p or n.startswith(p + ".") for p in PROTECTED_PREFIXES)
    ]
    for name in {*names, *PROTECTED_PREFIXES}:
        logger = logging.getLogger(name)
        if SECRET_FILTER not in logger.filters:
            logger.addFilter(SECRET_FILTER)
    for handler in logging.getLogger().handlers:
        if SECRET_FILTER not in handler.filters:
            handler.addFilter(SECRET_FILTER)
