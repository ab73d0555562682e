"""Build the development evaluation manifests for ``layerwatch eval`` from ``../shared/data``.

Writes into ``--out`` (outside the repository; the images are research data that may not be committed):

* ``heldout_normal_only.csv`` and ``heldout_normal_failure.csv``: the same test rows, calibrated with
  10 normal frames, or 10 normal + 5 failure frames, per camera;
* symlinks to the original images and the synthetic failure frames they need.

Cameras of a fold (all held out of that fold's dev models' training, see
:class:`appliance.training.data.DevFold`; fold ``b``'s bedcam cameras end in ``_b``):

* ``bedcam_heldout``: the fixed bed-level camera, the fold's 10 prints never seen in training. The data holds
  no failure frames from a fixed camera, so failures are synthetic: a failure region cropped from a held-out
  source's YOLO boxes (fold a: web_roboflow_3dprinting ``fail``; fold b: web_kapis20 spaghetti) blended into
  a held-out frame. Optimistic.
* ``bedcam_crossprint``: the same camera calibrated during two held-out prints and tested on the others
  (normal frames and synthetic failures): what a user sees when the next print is a new object.
* the fold's web source (fold a: ``web_hyungjungkim``, fold b: ``web_22yeets22``): real web and lab photos
  of good and failed prints from a held-out source; no fixed viewpoint, so harder for per-camera
  calibration than any real camera.

Columns: ``path,label,camera,role`` with ``path`` relative to the CSV's folder.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import cv2
import numpy as np

from appliance.training.data import (
    DEFAULT_DATA,
    FOLD_A,
    FOLDS,
    DevFold,
    crop_box,
    failure_boxes,
    load_rgb,
    paste_failure,
    read_manifest,
)

N_OK, N_FAIL = 10, 5


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src, dst)


PROTOCOLS = ("heldout_normal_only", "heldout_normal_failure")


def _crossprint(
    bed: list, crops: list[np.ndarray], out: Path, rng: np.random.Generator, camera: str
) -> list[tuple[str, str, str, str]]:
    """``bedcam_crossprint``: the appliance calibrated during two prints, then watching eight others (the
    frames of the calibration prints are not tested): tests that a new object on the bed is not a failure."""
    by_print: dict[str, list[int]] = {}
    for i, s in enumerate(bed):
        by_print.setdefault(s.sequence, []).append(i)
    prints = sorted(p for p, idx in by_print.items() if len(idx) >= 8)[:2]
    calib = [i for p in prints for i in by_print[p]]
    calib_ok = (calib[::2] + calib[1::2])[:N_OK]
    calib_fail = [i for i in calib if i not in calib_ok][:N_FAIL]
    test = [i for i, s in enumerate(bed) if s.sequence not in prints]
    rows = []
    folder = out / camera
    folder.mkdir(parents=True, exist_ok=True)
    for i in calib_ok + test:
        _link(bed[i].path, folder / f"ok_{i:03d}.jpg")
        rows.append((f"{camera}/ok_{i:03d}.jpg", "ok", camera, "calibrate" if i in calib_ok else "test"))
    for i in calib_fail + test:
        synth, _ = paste_failure(load_rgb(bed[i].path), crops[int(rng.integers(len(crops)))], rng)
        name = f"{camera}/fail_{i:03d}.jpg"
        cv2.imwrite(str(out / name), cv2.cvtColor(synth, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append((name, "failure", camera, "calib_fail" if i in calib_fail else "test"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lw-dev"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", choices=sorted(FOLDS), default="a", help="the development split")
    args = parser.parse_args(argv)
    for path in build(args.data, args.out, args.seed, FOLDS[args.fold]):
        print(f"wrote {path}")
    return 0


def build(data: Path, out: Path, seed: int = 0, fold: DevFold = FOLD_A) -> list[Path]:
    """Write ``fold``'s manifests (and the images they need) into ``out``; returns the CSV paths."""
    rng = np.random.default_rng(seed)
    samples = read_manifest(data)
    # path, label, camera, role; role "calib_fail" is a failure calibration frame (one protocol only)
    rows: list[tuple[str, str, str, str]] = []

    heldout, crossprint, web_camera = fold.cameras
    # bedcam_heldout: one calibration frame per held-out print, the rest are test frames
    bed = [s for s in samples if s.source == "bedcam_p1" and s.sequence in fold.sequences]
    crops = [
        crop_box(load_rgb(s.path), box)
        for s in samples
        if s.source == fold.paste_source
        for box in failure_boxes(s)[:1]
    ]
    crops = [c for c in crops if min(c.shape[:2]) >= 24]
    order = rng.permutation(len(bed))
    calib_ok: list[int] = []
    seen: set[str] = set()
    for i in order:
        if bed[i].sequence not in seen and len(calib_ok) < N_OK:
            seen.add(bed[i].sequence)
            calib_ok.append(int(i))
    rest = [int(i) for i in order if int(i) not in calib_ok]
    calib_fail, test = rest[:N_FAIL], rest[N_FAIL:]
    (out / heldout).mkdir(parents=True, exist_ok=True)
    for i in calib_ok:
        _link(bed[i].path, out / heldout / f"ok_{i:03d}.jpg")
        rows.append((f"{heldout}/ok_{i:03d}.jpg", "ok", heldout, "calibrate"))
    for j, i in enumerate(calib_fail + test):
        base = load_rgb(bed[i].path)
        synth, _ = paste_failure(base, crops[int(rng.integers(len(crops)))], rng)
        name = f"{heldout}/fail_{i:03d}.jpg"
        cv2.imwrite(str(out / name), cv2.cvtColor(synth, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if j < N_FAIL:
            rows.append((name, "failure", heldout, "calib_fail"))
        else:
            _link(bed[i].path, out / heldout / f"ok_{i:03d}.jpg")
            rows.append((f"{heldout}/ok_{i:03d}.jpg", "ok", heldout, "test"))
            rows.append((name, "failure", heldout, "test"))

    # the web camera: real photos, random calibration picks
    web = [s for s in samples if s.source == web_camera]
    for label in ("ok", "failure"):
        group = [web[i] for i in rng.permutation(len(web)) if web[i].label == label]
        n_cal = N_OK if label == "ok" else N_FAIL
        for k, s in enumerate(group):
            name = f"{web_camera}/{s.path.name}"
            _link(s.path, out / name)
            role = "test" if k >= n_cal else ("calibrate" if label == "ok" else "calib_fail")
            rows.append((name, label, web_camera, role))

    rows += _crossprint(bed, crops, out, rng, crossprint)
    return write_protocols(out, rows, PROTOCOLS)


def write_protocols(out: Path, rows: list[tuple[str, ...]], protocols: tuple[str, str]) -> list[Path]:
    """Write ``out/<protocol>.csv`` for the normal-only and the normal+failure protocol (in that order):
    rows with role ``calib_fail`` are left out of the first and become ``calibrate`` in the second."""
    written = []
    for protocol, with_failures in zip(protocols, (False, True), strict=True):
        written.append(out / f"{protocol}.csv")
        with open(written[-1], "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "camera", "role", "sequence"])
            for path, label, camera, role, *sequence in rows:
                if role == "calib_fail":
                    if not with_failures:
                        continue
                    role = "calibrate"
                writer.writerow([path, label, camera, role, sequence[0] if sequence else ""])
    return written


if __name__ == "__main__":
    raise SystemExit(main())
