"""The settings a user changes often, kept in ``<state_dir>/settings.json`` and layered over the
configuration file (after the credentials and the environment), so the console can change them without
editing the TOML file:

* ``cameras.<name>.sensitivity``: the camera's threshold shift in logits (+1: alerts sooner, -1: later);
* ``alarm.countdown_s``: seconds between an alert and the printer's (or relay's) action;
* ``printer.action`` (``pause``, ``cancel``, ``none``) and ``printer.watch_only_while_printing``: only when
  a ``[printer]`` is configured.

The file holds nothing else (anything else in it is an error naming the key). Its values go through the
same validation as the file's own (``layerwatch check-config`` reports a bad one with its key path and
"settings.json" as its origin). :func:`write_settings` replaces it atomically; a file that cannot be read
is set aside and the configuration file's values stand.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
DEFAULT_STATE_DIR = Path("/var/lib/layerwatch")
TOP_KEYS = {"alarm": ("countdown_s",), "printer": ("action", "watch_only_while_printing")}
CAMERA_KEYS = ("sensitivity",)


def settings_path(state_dir: Path) -> Path:
    return state_dir / SETTINGS_FILE


def read_settings(state_dir: Path) -> dict[str, Any]:
    """The stored settings (``{}`` without a file; an unreadable file is set aside)."""
    path = settings_path(state_dir)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        set_aside(path, f"unreadable settings: {exc}")
        return {}


def write_settings(state_dir: Path, data: dict[str, Any]) -> Path:
    path = settings_path(state_dir)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def merge_settings(tree: dict[str, Any], origins: dict[str, str]) -> list[tuple[str, str]]:
    """Layer the stored settings onto a raw config tree (in place, before validation); returns problems
    (key path, message) for keys the file may not hold."""
    service: dict[str, Any] = tree["service"] if isinstance(tree.get("service"), dict) else {}
    state_dir = Path(str(service.get("state_dir") or DEFAULT_STATE_DIR))
    data = read_settings(state_dir)
    origin = f"{settings_path(state_dir)}"
    problems: list[tuple[str, str]] = []
    for table, value in data.items():
        if table == "cameras" and isinstance(value, dict):
            cameras = {c.get("name", "printer"): c for c in tree.get("cameras") or [] if isinstance(c, dict)}
            for index, (name, entry) in enumerate(cameras.items()):
                for key, setting in (value.get(name) or {}).items():
                    if key not in CAMERA_KEYS:
                        problems.append((f"cameras.{name}.{key}", f"not a setting of {origin}"))
                        continue
                    entry[key] = setting
                    origins[f"cameras.{index}.{key}"] = origin
            problems += [(f"cameras.{n}", f"no such camera ({origin})") for n in value if n not in cameras]
        elif table in TOP_KEYS and isinstance(value, dict):
            if table == "printer" and not isinstance(tree.get("printer"), dict):
                continue  # no printer configured: its settings wait until one is
            for key, setting in value.items():
                if key not in TOP_KEYS[table]:
                    problems.append((f"{table}.{key}", f"not a setting of {origin}"))
                    continue
                tree.setdefault(table, {})[key] = setting
                origins[f"{table}.{key}"] = origin
        else:
            problems.append((table, f"not a setting of {origin}"))
    return problems
