#!/usr/bin/env python3
"""Build the bundled demo clip ``appliance/defaults/demo.mp4``.

The clip is made ONLY from the ``web_roboflow_3dprinting`` images of the development data (a
Roboflow export marked Public Domain, github p3rc1va1/3D-Print-Failure-Detection); no other
picture from the data folder may go into the repository. That export contains augmented copies
(flipped, rotated, brightened, recoloured versions of one photo), so the script picks
distinct-looking photos: it shuffles the rows with a fixed seed and keeps a photo only when it
matches none of the photos already kept, plain or mirrored. Two photos match when their small,
normalised grey thumbnails are close, or when enough ORB keypoints agree on one homography (which
catches rotated and recoloured copies).

Each kept photo becomes one frame (resized to ``--size`` px square), encoded as H.264 by Debian's
``ffmpeg`` (single-threaded and bit-exact flags, so the same inputs give the same file)::

    python scripts/make_demo_clip.py [--data ../shared/data] [--frames 60] [--size 320] [--fps 2]

Needs numpy, OpenCV and the ``ffmpeg`` command; takes about a minute (the keypoint matching).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE = "web_roboflow_3dprinting"
THUMB = 16
SAME_SCENE_INLIERS = 20  # ORB matches on one homography: 20+ for augmented copies, under 12 else

_orb = cv2.ORB_create(400)
_matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)


@dataclass
class Photo:
    """What is compared: a thumbnail and ORB features of the photo and of its mirror image."""

    thumbs: list[np.ndarray]
    features: list[tuple[Any, Any]]


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """A 16x16 thumbnail with zero mean and unit norm: blind to brightness and contrast."""
    vector = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) + 1e-6)


def describe(image: np.ndarray) -> Photo:
    grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    views = [grey, cv2.flip(grey, 1)]
    return Photo([thumbnail(v) for v in views], [_orb.detectAndCompute(v, None) for v in views])


def inliers(a: tuple[Any, Any], b: tuple[Any, Any]) -> int:
    """How many cross-checked ORB matches between two views agree on one homography."""
    (keys_a, desc_a), (keys_b, desc_b) = a, b
    if desc_a is None or desc_b is None or len(keys_a) < 8 or len(keys_b) < 8:
        return 0
    matches = _matcher.match(desc_a, desc_b)
    if len(matches) < max(SAME_SCENE_INLIERS, 4):
        return 0
    src = np.float32([keys_a[m.queryIdx].pt for m in matches])
    dst = np.float32([keys_b[m.trainIdx].pt for m in matches])
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0, maxIters=500)
    return 0 if mask is None else int(mask.sum())


def same_scene(candidate: Photo, kept: Photo, min_distance: float) -> bool:
    """True when ``candidate`` (plain or mirrored) looks like a copy of ``kept``."""
    if any(float(np.linalg.norm(t - kept.thumbs[0])) < min_distance for t in candidate.thumbs):
        return True
    return any(inliers(f, kept.features[0]) >= SAME_SCENE_INLIERS for f in candidate.features)


def select(data: Path, frames: int, seed: int, min_distance: float) -> list[Path]:
    with (data / "manifest.csv").open(newline="") as handle:
        paths = sorted(data / row["path"] for row in csv.DictReader(handle) if row["source"] == SOURCE)
    if not paths:
        sys.exit(f"no {SOURCE} rows in {data / 'manifest.csv'}")
    order = np.random.default_rng(seed).permutation(len(paths))
    chosen: list[Path] = []
    kept: list[Photo] = []
    for index in order:
        image = cv2.imread(str(paths[index]), cv2.IMREAD_COLOR)
        if image is None:
            continue
        photo = describe(image)
        if not any(same_scene(photo, other, min_distance) for other in kept):
            chosen.append(paths[index])
            kept.append(photo)
            if len(chosen) == frames:
                break
    if len(chosen) < frames:
        sys.exit(f"only {len(chosen)} distinct images; lower --min-distance")
    return chosen


def encode(images: list[Path], out: Path, size: int, fps: float, crf: int) -> None:
    if shutil.which("ffmpeg") is None:
        sys.exit("needs the ffmpeg command (apt-get install ffmpeg)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # fmt: off
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size}x{size}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "veryslow", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-g", str(len(images)), "-bf", "0", "-threads", "1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+faststart", str(out),
    ]
    # fmt: on
    frames = b"".join(
        cv2.resize(cv2.imread(str(p), cv2.IMREAD_COLOR), (size, size), interpolation=cv2.INTER_AREA).tobytes()
        for p in images
    )
    subprocess.run(cmd, input=frames, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="data folder")
    parser.add_argument("--out", type=Path, default=REPO / "appliance" / "defaults" / "demo.mp4")
    parser.add_argument("--frames", type=int, default=60, help="number of distinct photos (frames)")
    parser.add_argument("--size", type=int, default=320, help="frame width and height in px")
    parser.add_argument("--fps", type=float, default=2.0, help="frame rate stored in the file, frames/s")
    parser.add_argument("--crf", type=int, default=30, help="x264 quality (lower is better and bigger)")
    parser.add_argument("--seed", type=int, default=20261121, help="shuffle seed")
    parser.add_argument(
        "--min-distance", type=float, default=0.6, help="thumbnail distance to count as distinct"
    )
    args = parser.parse_args()

    images = select(args.data, args.frames, args.seed, args.min_distance)
    encode(images, args.out, args.size, args.fps, args.crf)
    print(f"{args.out}: {len(images)} frames, {args.size}x{args.size}, {args.out.stat().st_size // 1024} KiB")
    for path in images:
        print(f"  {path.relative_to(args.data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
