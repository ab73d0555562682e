"""Retention: saved frames and timelapses older than ``history.image_retention_days``, and alert
evidence (``<state_dir>/cameras/<camera>/alerts/*.jpg``) older than ``history.evidence_retention_days``,
are deleted; folders left empty go too. Age is the file's modification time against ``now`` (wall
clock seconds, injectable). A retention of 0 keeps everything. The folder of a job still running is
never removed (its files are new anyway). Runs on the history sink's slow-work thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DAY_S = 86400.0
EXTENSIONS = (".jpg", ".jpeg", ".mp4")


@dataclass
class Pruned:
    files: int = 0
    bytes: int = 0
    folders: int = 0


def prune_files(paths: Iterable[Path], cutoff: float, pruned: Pruned) -> None:
    for path in paths:
        try:
            stat = path.stat()
            if stat.st_mtime < cutoff:
                path.unlink()
                pruned.files += 1
                pruned.bytes += stat.st_size
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("retention: cannot delete %s: %s", path, exc)


def _remove_empty(root: Path, keep: set[Path], pruned: Pruned) -> None:
    for folder in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        if folder in keep:
            continue
        try:
            folder.rmdir()  # only succeeds when empty
            pruned.folders += 1
        except OSError:
            pass


def prune_images(
    images_dir: Path, days: float, now: float | None = None, keep: Iterable[Path] = ()
) -> Pruned:
    """Delete frames and timelapses under ``images_dir`` older than ``days``."""
    pruned = Pruned()
    if days <= 0 or not images_dir.is_dir():
        return pruned
    cutoff = (time.time() if now is None else now) - days * DAY_S
    files = (p for p in images_dir.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    prune_files(files, cutoff, pruned)
    _remove_empty(images_dir, set(keep), pruned)
    return pruned


def prune_evidence(state_dir: Path, days: float, now: float | None = None) -> Pruned:
    """Delete alert evidence JPEGs older than ``days`` (every camera)."""
    pruned = Pruned()
    if days <= 0:
        return pruned
    cutoff = (time.time() if now is None else now) - days * DAY_S
    prune_files((state_dir / "cameras").glob("*/alerts/*.jpg"), cutoff, pruned)
    return pruned
