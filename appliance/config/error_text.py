"""What a configuration error says: the camera by its name, the nearest known key, never a credential.

:class:`~appliance.errors.ConfigError` problems are ``(key path, message)`` pairs, printed by
``layerwatch check-config`` and by ``layerwatch run`` when it exits 78. Three rules are applied to
every problem by :func:`appliance.config.loader.load_config` (issue 33 item 4, issue 34):

* a path under ``cameras.<n>`` keeps its position (scripts and tests read it) and the message names the
  camera: ``cameras.1.source.widht: unknown key; did you mean width? (camera "snap")``;
* an unknown key gets the nearest key of the same table (:mod:`difflib`) when it is no key of another
  table (:func:`appliance.config.reference.suggestion` answers that case);
* every credential is masked as the running service masks it: the user info of any URL
  (``mqtt://***@host:1883``), secret query values (``pwd=***``, :mod:`appliance.sources.redact`) and
  every value of a secret key (passwords, tokens, webhook URLs, API keys), found in the raw tree after the
  file, the systemd credentials and the environment were merged, plus the raw values of those variables.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from appliance.config.reference import key_paths
from appliance.sources.redact import MASK, redact_url, url_secrets

#: keys whose whole value is a secret wherever they appear in the tree
SECRET_KEYS = frozenset(
    {"password", "token", "api_key", "bot_token", "webhook_url", "secret", "session_token", "api_token",
     "secret_access_key", "access_key_id", "credentials"}
)  # fmt: skip
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
#: user info after any scheme, also in a malformed URL (``rtsp:/user:pass@host``, ``mqtt:user:pw@h``)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*:/{0,3})([^\s/@'\"<>]+)@")
_SHORTEST_SECRET = 4  # shorter values (a port, "ab") would mask ordinary words


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)
    elif isinstance(node, str):
        yield key, node


def tree_secrets(tree: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """The credentials in a raw config tree and in ``environ`` (only the variables the loader reads)."""
    found: set[str] = set()
    pairs = list(_strings(tree))
    if environ is not None:  # the variables the loader reads, in case it failed before merging them all
        pairs += [(name.lower(), value) for name, value in environ.items()]
    for key, value in pairs:
        if key.lower() in SECRET_KEYS or any(word in key.lower() for word in ("password", "token", "secret")):
            found.add(value.strip())
        if "://" in value or "?" in value:
            found.update(url_secrets(value.strip()))
        userinfo = _USERINFO.search(value)
        if userinfo is not None:
            found.update({userinfo.group(2), *userinfo.group(2).split(":", 1)})
    return sorted((s for s in found if len(s) >= _SHORTEST_SECRET), key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every URL's credentials and every one of ``secrets`` replaced by ``***``."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    text = _USERINFO.sub(lambda match: f"{match.group(1)}{MASK}@", text)
    for secret in secrets:
        if secret and secret != MASK:
            text = text.replace(secret, MASK)
    return text


@lru_cache(maxsize=1)
def _table_keys() -> dict[str, set[str]]:
    """Dotted table path (list indexes left out) -> the keys and sub-tables it may hold."""
    keys: dict[str, set[str]] = {}
    for leaf, tables in key_paths().items():
        for table in tables:
            keys.setdefault(table, set()).add(leaf)
    return keys


def nearest_key(path: str) -> str | None:
    """The known key of the same table closest to the unknown leaf of ``path`` (``widht`` -> ``width``)."""
    *parents, leaf = path.split(".")
    table = ".".join(p for p in parents if not p.isdigit()) or "(top level)"
    close = difflib.get_close_matches(leaf, sorted(_table_keys().get(table, ())), n=1, cutoff=0.6)
    return close[0] if close else None


def camera_name(path: str, tree: Any) -> str | None:
    """The ``name`` of the camera a ``cameras.<n>...`` path is in (the default name if it has none)."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "cameras" or not parts[1].isdigit() or not isinstance(tree, dict):
        return None
    cameras = tree.get("cameras")
    index = int(parts[1])
    if not isinstance(cameras, list) or index >= len(cameras) or not isinstance(cameras[index], dict):
        return None
    name = cameras[index].get("name", "printer")
    return name if isinstance(name, str) else None


def explain(problems: list[tuple[str, str]], tree: Any, secrets: list[str]) -> list[tuple[str, str]]:
    """The problems as they are shown: masked, with the camera's name and the nearest key."""
    shown = []
    for path, message in problems:
        if message == "unknown key":
            near = nearest_key(path)
            message = f"unknown key; did you mean {near}?" if near else message
        name = camera_name(path, tree)
        if name is not None:
            message = f"{message} (camera {name!r})"
        shown.append((mask(path, secrets), mask(message, secrets)))
    return shown
