"""The evaluation manifest of ``layerwatch eval``: a CSV of labelled frames, read and checked.

Columns ``path,label,camera,role`` (required) and ``sequence,time_s`` (optional):

- ``path``: the image, relative to the CSV's folder;
- ``label``: ``ok`` or ``failure`` (also ``good``/``normal``/``pass`` and ``fail``/``failed``);
- ``camera``: rows of one camera are calibrated and scored together, in the CSV's order (time order);
- ``role``: ``calibrate`` (the camera's calibration frames) or ``test`` (scored);
- ``sequence``: which print a test row belongs to (``eval --prints``); empty or absent: the camera's
  test rows are one print;
- ``time_s``: seconds since that print's start (``eval --prints``); empty or absent: the row's position
  in its print times the analysis interval.

Forgiving where it cannot change a figure: a byte-order mark, header case and spaces and blank lines are
accepted; an image that is missing or cannot be decoded is logged and counted as ``skipped`` instead of
ending the run (:func:`read_or_skip`).
"""

from __future__ import annotations

import csv
import logging
import pathlib
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import LayerwatchError

logger = logging.getLogger(__name__)

LABELS = ("ok", "failure")
ROLES = ("calibrate", "test")
# spellings other tools write for the same two labels (matched case-insensitively)
LABEL_ALIASES = {"good": "ok", "normal": "ok", "pass": "ok", "fail": "failure", "failed": "failure"}
REQUIRED_COLUMNS = frozenset({"path", "label", "camera", "role"})


class EvalManifestError(LayerwatchError):
    """The evaluation manifest cannot be used."""


@dataclass(frozen=True)
class EvalRow:
    """One manifest row. ``line`` is its line in the CSV (for messages and frame ids); ``sequence`` and
    ``time_s`` are None when the CSV does not give them."""

    path: pathlib.Path
    label: str
    camera: str
    role: str
    sequence: str | None = None
    time_s: float | None = None
    line: int = 0


def read_eval_manifest(manifest: pathlib.Path) -> list[EvalRow]:
    """Parse and check the CSV; paths are resolved against the CSV's folder."""
    try:
        # utf-8-sig: a spreadsheet's byte-order mark must not hide the first column's name
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [name.strip().lower() for name in next(reader, [])]
            missing = REQUIRED_COLUMNS - set(header)
            if missing:
                raise EvalManifestError(f"{manifest}: missing columns {sorted(missing)}")
            raw = [dict(zip(header, line, strict=False)) for line in reader if any(c.strip() for c in line)]
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalManifestError(f"{manifest}: cannot read: {exc}") from exc
    rows = [_row(manifest, n, item) for n, item in enumerate(raw, start=2)]
    if not any(r.role == "test" for r in rows):
        raise EvalManifestError(f"{manifest}: no test rows")
    return rows


def _row(manifest: pathlib.Path, n: int, item: dict[str, str]) -> EvalRow:
    label = (item.get("label") or "").strip().lower()
    label, role = LABEL_ALIASES.get(label, label), (item.get("role") or "").strip().lower()
    path = (item.get("path") or "").strip()
    if label not in LABELS or role not in ROLES or not path:
        raise EvalManifestError(
            f"{manifest}:{n}: needs a path, label ok/failure and role calibrate/test, got {item}"
        )
    sequence = (item.get("sequence") or "").strip() or None
    time_text = (item.get("time_s") or "").strip()
    try:
        time_s = float(time_text) if time_text else None
    except ValueError as exc:
        raise EvalManifestError(
            f"{manifest}:{n}: time_s must be a number of seconds, got {time_text!r}"
        ) from exc
    camera = (item.get("camera") or "").strip()
    return EvalRow(manifest.parent / path, label, camera, role, sequence, time_s, n)


def read_image(path: pathlib.Path) -> np.ndarray:
    """The image as BGR uint8; :class:`EvalManifestError` if it is missing or not an image."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EvalManifestError(f"{path}: cannot read image")
    return image


def read_or_skip(row: EvalRow) -> np.ndarray | None:
    """The row's image, or None (logged) if it is missing or not an image: one bad file must not void a
    run of thousands; the count is reported as ``skipped``."""
    try:
        return read_image(row.path)
    except EvalManifestError as exc:
        logger.warning("skipped: %s", exc)
        return None
