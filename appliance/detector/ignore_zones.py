"""Ignore zones: areas of a camera's picture the detector does not look at (a bed logo, clips, a cable).

A zone is a rectangle in normalised coordinates (0..1, origin top left). Before a frame is embedded the
zones are painted over from their surroundings (OpenCV's Telea inpainting, on the frame at the model's
input size, a millisecond or two), so whatever is inside a zone, a failure or a shiny logo, cannot raise
the score; the zone's cells of the evidence heatmap are zeroed too. The same mask is applied to frames
captured for a calibration, so the camera's normal look is learned without the zones.

Stored per camera in ``<state_dir>/cameras/<camera>/ignore_zones.json`` (``{"version": 1, "zones":
[{"x0", "y0", "x1", "y1"}]}``), written atomically; an unreadable file is set aside and the camera runs
without zones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

ZONES_FILE = "ignore_zones.json"
MAX_ZONES = 16
INPAINT_RADIUS_PX = 3


@dataclass(frozen=True)
class Zone:
    """A rectangle, normalised to [0, 1] (x to the right, y down)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def from_json(cls, data: object) -> Zone:
        if not isinstance(data, dict):
            raise ValueError("a zone is an object with x0, y0, x1, y1")
        values = [data.get(k) for k in ("x0", "y0", "x1", "y1")]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ValueError("zone coordinates x0, y0, x1, y1 must be numbers")
        x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in values)  # type: ignore[arg-type]
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:
            raise ValueError("a zone must have a width and a height")
        return cls(x0, y0, x1, y1)

    def to_json(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 4) for k in ("x0", "y0", "x1", "y1")}


def zones_path(state_dir: Path, camera: str) -> Path:
    return state_dir / "cameras" / camera / ZONES_FILE


def parse_zones(data: object) -> tuple[Zone, ...]:
    """Zones from a JSON list (``ValueError`` naming what is wrong)."""
    if not isinstance(data, list):
        raise ValueError("zones must be a list")
    if len(data) > MAX_ZONES:
        raise ValueError(f"at most {MAX_ZONES} zones")
    return tuple(Zone.from_json(item) for item in data)


def load_zones(
    state_dir: Path, camera: str, report: Callable[[str], None] = lambda m: None
) -> tuple[Zone, ...]:
    path = zones_path(state_dir, camera)
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return parse_zones(data.get("zones"))
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as exc:
        set_aside(path, f"unreadable ignore zones: {exc}")
        report(f"ignore zones of {camera} set aside: {exc}")
        return ()


def save_zones(state_dir: Path, camera: str, zones: Sequence[Zone]) -> Path:
    payload = {"version": 1, "zones": [z.to_json() for z in zones]}
    return atomic_write_text(zones_path(state_dir, camera), json.dumps(payload, indent=1))


class IgnoreMask:
    """The zones of one camera as pixel masks, built once per frame size."""

    def __init__(self, zones: Sequence[Zone]):
        self.zones = tuple(zones)
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self.zones)

    def mask(self, width: int, height: int) -> np.ndarray:
        """uint8 (height, width): 255 inside a zone."""
        key = (width, height)
        if key not in self._masks:
            mask = np.zeros((height, width), np.uint8)
            for z in self.zones:
                x0, x1 = int(z.x0 * width), max(int(z.x0 * width) + 1, round(z.x1 * width))
                y0, y1 = int(z.y0 * height), max(int(z.y0 * height) + 1, round(z.y1 * height))
                mask[y0:y1, x0:x1] = 255
            self._masks[key] = mask
        return self._masks[key]

    def apply(self, image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The frame at ``size`` (width, height) with the zones painted over from their surroundings."""
        if (image_bgr.shape[1], image_bgr.shape[0]) != size:
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        return cv2.inpaint(image_bgr, self.mask(*size), INPAINT_RADIUS_PX, cv2.INPAINT_TELEA)

    def clear_heatmap(self, heatmap: np.ndarray) -> np.ndarray:
        """Zero the heatmap cells whose centre lies in a zone."""
        rows, cols = heatmap.shape
        inside = self.mask(cols, rows) > 0
        out = heatmap.copy()
        out[inside] = 0.0
        return out
