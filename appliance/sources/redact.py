"""Keep camera credentials out of logs and error messages.

Camera URLs often carry secrets: ``rtsp://user:pass@cam/stream`` or Foscam-style
``/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=admin&pwd=secret``. Every log line and every error
message a source writes goes through :func:`redact_url` (for URLs it builds itself) or
:func:`redact_text` (for text from a library, such as an exception message, that may quote them).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

MASK = "***"

_SECRET_QUERY_KEYS = frozenset(
    {"usr", "user", "username", "pwd", "pass", "passwd", "password", "token", "key", "secret", "auth"}
)


def redact_url(url: str) -> str:
    """Return ``url`` with its user info and secret-looking query values replaced by ``***``.

    ``rtsp://admin:pw@cam:554/s?token=x`` becomes ``rtsp://***@cam:554/s?token=***``. Text that is
    not a URL comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = []
        for item in query.split("&"):
            key = item.split("=", 1)[0]
            pairs.append(f"{key}={MASK}" if unquote(key).lower() in _SECRET_QUERY_KEYS else item)
        query = "&".join(pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secret strings inside ``url`` (user, password and secret query values), raw and
    percent-decoded, longest first, for :func:`redact_text`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.add(userinfo)
        found.update(userinfo.split(":", 1))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_QUERY_KEYS:
            found.add(value)
    found.update({unquote(item) for item in found})
    return sorted((item for item in found if item), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
