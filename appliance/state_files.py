"""Files the service writes and reads back: written atomically, set aside when they cannot be read.

Every state file under ``service.state_dir`` (calibrations, the camera learner, the backend choice, the
outbox, the cloud budget) goes through :func:`atomic_write_bytes`: the bytes go to a temporary file in the
same folder, which is fsynced, renamed over the target and the folder fsynced, so after a crash or a power
cut the path holds either the old complete file or the new complete file, never half of one.

A file that exists but cannot be used (truncated, empty, wrong shape) is moved aside with
:func:`set_aside` to ``<name>.bad-<unix time>`` beside it, so the service starts without it, the user can
look at it, and the next write starts clean. Nothing is deleted. Every set-aside is also handed to the
listener :func:`listen_set_aside` installed (the service makes it a ``state_file_set_aside`` device event);
those before a listener exists (``backend.json``, read while the model loads) are kept until one does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

#: (file, where it went, why) -> None; see listen_set_aside
SetAsideListener = Callable[[Path, Path, str], None]
MAX_UNREPORTED = 50  # set-asides kept for a listener that does not exist yet
_listener: SetAsideListener | None = None
_unreported: list[tuple[Path, Path, str]] = []
_listener_lock = threading.Lock()


def listen_set_aside(listener: SetAsideListener | None) -> None:
    """Hand every set-aside from now on to ``listener`` (None: keep them again), starting with those
    that happened before (at most ``MAX_UNREPORTED``)."""
    global _listener
    with _listener_lock:
        _listener = listener
        waiting = list(_unreported) if listener is not None else []
        if listener is not None:
            _unreported.clear()
    for item in waiting:
        _tell(listener, *item)


def _tell(listener: SetAsideListener | None, path: Path, target: Path, reason: str) -> None:
    if listener is None:
        return
    try:
        listener(path, target, reason)
    except Exception as exc:  # a report must never stop the service from starting
        logger.warning("set-aside report failed: %s", exc)


def _report(path: Path, target: Path, reason: str) -> None:
    with _listener_lock:
        listener = _listener
        if listener is None and len(_unreported) < MAX_UNREPORTED:
            _unreported.append((path, target, reason))
    _tell(listener, path, target, reason)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o640) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync the folder).

    Raises ``OSError`` (ENOSPC, EACCES, ...) with no temporary file left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_folder(path.parent)
    return path


def atomic_write_text(path: Path, text: str, mode: int = 0o640) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def set_aside(path: Path, reason: str) -> Path | None:
    """Move an unusable state file to ``<name>.bad-<time>`` beside it and log why; returns the new path
    (None when the file is gone or cannot be moved, in which case it is left where it is)."""
    target = path.with_name(f"{path.name}.bad-{int(time.time())}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot set aside unreadable %s (%s): %s", path, reason, exc)
        return None
    fsync_folder(path.parent)
    logger.warning("set aside unreadable %s as %s: %s", path, target.name, reason)
    _report(path, target, reason)
    return target


MAX_LEFTOVER_SCAN = 10000  # files looked at by clean_leftovers (a bound, not a limit anyone reaches)


def is_leftover(path: Path) -> bool:
    """A temporary file of an interrupted write: ``.<name>.<random>.tmp`` (:func:`atomic_write_bytes`),
    ``.tmp-*`` (earlier versions) or the storage probe; never a complete state file."""
    name = path.name
    temporary = name.endswith(".tmp") or name.startswith(".tmp-") or name == ".storage-probe"
    return name.startswith(".") and temporary


def clean_leftovers(state_dir: Path) -> list[Path]:
    """Remove the temporary files a SIGKILL or power cut left under ``state_dir`` (at start-up, before
    anything writes); returns what was removed. Each is logged: the complete file beside it is untouched."""
    removed: list[Path] = []
    if not state_dir.is_dir():
        return removed
    for n, path in enumerate(state_dir.rglob(".*")):
        if n >= MAX_LEFTOVER_SCAN:
            break
        if path.is_file() and is_leftover(path):
            try:
                path.unlink()
            except OSError as exc:
                logger.warning("cannot remove leftover temporary file %s: %s", path, exc)
                continue
            removed.append(path)
    if removed:
        names = ", ".join(str(p.relative_to(state_dir)) for p in removed[:5])
        logger.warning("removed %d temporary file(s) left by an interrupted write: %s%s", len(removed), names,
                       " ..." if len(removed) > 5 else "")  # fmt: skip
    return removed
