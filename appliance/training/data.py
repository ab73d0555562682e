"""The training data in ``../shared/data`` (never copied into the repository): manifest rows and images."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFAULT_DATA = Path(
    os.environ.get("LAYERWATCH_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
)


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str  # ok | failure | unknown
    source: str
    detail: str
    sequence: str
    boxes: tuple[tuple[int, float, float, float, float], ...]  # class, cx, cy, w, h (normalised)


def _boxes(raw: str) -> tuple[tuple[int, float, float, float, float], ...]:
    out: list[tuple[int, float, float, float, float]] = []
    for item in raw.split(";"):
        parts = item.split()
        if len(parts) == 5:
            cx, cy, w, h = (float(p) for p in parts[1:])
            out.append((int(float(parts[0])), cx, cy, w, h))
    return tuple(out)


def read_manifest(data_dir: Path = DEFAULT_DATA) -> list[Sample]:
    with open(data_dir / "manifest.csv", newline="") as fh:
        return [
            Sample(
                data_dir / row["path"],
                row["label"],
                row["source"],
                row["detail"],
                row["sequence"],
                _boxes(row["yolo_boxes"]),
            )
            for row in csv.DictReader(fh)
        ]


def failure_boxes(sample: Sample) -> list[tuple[float, float, float, float]]:
    """The failure regions of a sample as (x0, y0, x1, y1) normalised: kapis20 class 1 (spaghetti),
    roboflow class 0 (fail)."""
    wanted = {"web_kapis20": 1, "web_roboflow_3dprinting": 0}.get(sample.source)
    out = []
    for cls, cx, cy, w, h in sample.boxes:
        if cls == wanted:
            out.append(
                (max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, 1.0), min(cy + h / 2, 1.0))
            )
    return out


def load_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_input(rgb: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The appliance's preprocessing: the whole frame resized to (width, height), INTER_AREA."""
    return cv2.resize(rgb, input_size, interpolation=cv2.INTER_AREA)


CHAMBER = "chamber_centauri"  # an in-chamber camera's normal events (hard negatives), held out of dev models


@dataclass(frozen=True)
class DevFold:
    """One development split: sources and bedcam prints held out of a *dev* model's training, so that the
    dev-eval manifests (:mod:`appliance.training.devsets`) measure data that model never saw. The shipped
    model trains on all of it.

    ``web_camera`` is the held-out web source evaluated as a "camera"; ``paste_source`` the held-out source
    whose YOLO failure boxes (:func:`failure_boxes`) are pasted into the held-out bedcam frames as the
    synthetic fixed-camera failures; ``suffix`` tells the fold's bedcam cameras (``_b``) and work folders
    (``-b``) apart; fold a has none, so its names are the first sessions' ones."""

    name: str
    sources: tuple[str, ...]
    sequences: tuple[str, ...]
    web_camera: str
    paste_source: str
    suffix: str

    def holds_out(self, sample: Sample) -> bool:
        """Whether a dev model of this fold must not see ``sample``: the fold's sources and bed prints, and
        in every fold the in-chamber camera (:data:`CHAMBER`), whose false alarms every dev model measures."""
        return (
            sample.source in self.sources
            or sample.source == CHAMBER
            or (sample.source == "bedcam_p1" and sample.sequence in self.sequences)
        )

    @property
    def work_tag(self) -> str:
        """The suffix of this fold's dev-manifest and dev-model folders under ``--work``."""
        return self.suffix.replace("_", "-")

    @property
    def cameras(self) -> tuple[str, str, str]:
        return (f"bedcam_heldout{self.suffix}", f"bedcam_crossprint{self.suffix}", self.web_camera)


_PRINTS_A = (
    "YellowCat", "WhiteNeitiri_SupportFail", "YellowArch", "BlueMonk", "BlackWobbly",
    "RedHeart", "WhiteTotem", "YellowEarly", "OrangeLibery", "PinkNetriti_Early",
)  # fmt: skip
_PRINTS_B = (
    "BlackMoai", "BlackTilt_noz", "BlueHourse", "GreenNeedle", "PinkMan",
    "WhiteBoat", "WhiteBust", "WhiteHorseback", "WhiteNetiri_Fallover", "YellowOval_still",
)  # fmt: skip
# Two folds that together hold out every bedcam print once, two web sources each, and each fold pastes
# failures from a source its dev models never saw (fold b's web sources are disjoint from fold a's).
FOLD_A = DevFold(
    name="a",
    sources=("web_hyungjungkim", "web_roboflow_3dprinting"),
    sequences=_PRINTS_A,
    web_camera="web_hyungjungkim",
    paste_source="web_roboflow_3dprinting",
    suffix="",
)
FOLD_B = DevFold(
    name="b",
    sources=("web_22yeets22", "web_kapis20"),
    sequences=_PRINTS_B,
    web_camera="web_22yeets22",
    paste_source="web_kapis20",
    suffix="_b",
)
FOLDS = {fold.name: fold for fold in (FOLD_A, FOLD_B)}


def crop_box(rgb: np.ndarray, box: tuple[float, float, float, float], pad: float = 0.05) -> np.ndarray:
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    x0, x1 = max(int((x0 - pad) * w), 0), min(int((x1 + pad) * w), w)
    y0, y1 = max(int((y0 - pad) * h), 0), min(int((y1 + pad) * h), h)
    return rgb[y0:y1, x0:x1]


def failure_crops(samples: list[Sample]) -> list[np.ndarray]:
    """Crops of the failure regions (up to 2 YOLO boxes per photo; the central 70 % of a 22yeets22 failure
    photo, which has no boxes), at least 24 px on each side, in sample order: what gets pasted into
    fixed-camera frames as synthetic failures."""
    crops = []
    for s in samples:
        if s.label != "failure":
            continue
        boxes = failure_boxes(s)
        if boxes or s.source == "web_22yeets22":
            rgb = load_rgb(s.path)
            for box in boxes[:2] or [(0.15, 0.15, 0.85, 0.85)]:
                crop = crop_box(rgb, box)
                if min(crop.shape[:2]) >= 24:
                    crops.append(crop)
    return crops


def box_cells(
    box: tuple[float, float, float, float], grid: tuple[int, int], touching: bool = False
) -> np.ndarray:
    """Which cells (row-major, 1.0 / 0.0) of a ``grid`` (rows, cols) a normalised box (x0, y0, x1, y1) covers:
    cells whose centre lies inside it, or with ``touching`` every cell it overlaps. Training's patch loss
    uses centres; the cell failure head (``heads.py``) uses overlaps."""
    rows, cols = grid
    x0, y0, x1, y1 = box
    if touching:
        cells = np.zeros((rows, cols), np.float32)
        cells[
            int(y0 * rows) : max(int(np.ceil(y1 * rows)), 1), int(x0 * cols) : max(int(np.ceil(x1 * cols)), 1)
        ] = 1
        return cells.ravel()
    ys, xs = np.mgrid[0:rows, 0:cols]
    cx, cy = (xs + 0.5) / cols, (ys + 0.5) / rows
    return ((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)).astype(np.float32).ravel()


def paste_failure(
    frame: np.ndarray, patch: np.ndarray, rng: np.random.Generator, scale: tuple[float, float] = (0.25, 0.5)
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A synthetic failure on a fixed camera's frame: ``patch`` (a crop of a failure region) blended
    with a feathered mask into the lower part of ``frame`` (where the bed and the part are).
    Returns the new frame and the pasted box (x0, y0, x1, y1) normalised."""
    h, w = frame.shape[:2]
    pw = int(w * rng.uniform(*scale))
    ph = int(np.clip(pw * patch.shape[0] / max(patch.shape[1], 1), h * 0.15, h * 0.6))
    pasted = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
    x0 = int(rng.uniform(0.1, 0.9) * (w - pw))
    y0 = int(rng.uniform(0.35, 0.95) * (h - ph))
    hard = np.zeros((ph, pw), np.float32)
    border = max(min(pw, ph) // 8, 1)
    hard[border:-border, border:-border] = 1.0
    mask = cv2.GaussianBlur(hard, (0, 0), border / 2 + 0.5)[..., None]
    out = frame.astype(np.float32)
    region = out[y0 : y0 + ph, x0 : x0 + pw]
    # match the brightness of the camera so the paste is not trivially a colour jump
    pasted = pasted * (region.mean() + 1.0) / (pasted.mean() + 1.0)
    out[y0 : y0 + ph, x0 : x0 + pw] = region * (1 - mask) + np.clip(pasted, 0, 255) * mask
    return out.astype(np.uint8), (x0 / w, y0 / h, (x0 + pw) / w, (y0 + ph) / h)
