"""Development manifests of **real frames only**, for ``layerwatch eval`` (static and ``--feedback``).

The yardstick for the camera learner (models/README.md): no pasted failures. Per dev fold
(:data:`appliance.training.data.FOLDS`; its dev model never saw these sources or prints):

* the fold's held-out web source as a camera (fold a ``web_hyungjungkim``, fold b ``web_22yeets22``): real
  photos of good and failed prints; 10 normal + 5 failure frames calibrate, the rest are test rows in a
  shuffled, fixed order (the stream order of ``--feedback``). Harder than a real camera: no fixed viewpoint;
* ``bedcam_real`` (``_b`` in fold b): the fixed bed camera's held-out prints, normal frames only (the data
  has no failure frames from a fixed camera): calibrated on 10 frames of the first two held-out prints, then
  its other prints in print order: the false alarms of a camera whose next print is a new object;
* ``chamber`` (``chamber_b``): the in-chamber camera's normal events (``chamber_centauri``: dim, blurred,
  empty beds and first layers that fooled a vision model), calibrated on 10 frames of its first two
  events, the other 18 events as test prints. No dev model saw them (:meth:`DevFold.holds_out`).

``real_normal_only.csv`` leaves the failure calibration frames out; ``real_normal_failure.csv`` keeps them
(the fixed cameras have none: their rows are the same in both). Columns ``path,label,camera,role,sequence``
(``sequence``: the print, on the fixed cameras' test rows, for ``layerwatch eval --prints``); the images are
symlinks into ``--out`` (outside the repository: the data may not be committed).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from appliance.training.data import CHAMBER, DEFAULT_DATA, FOLDS, DevFold, Sample, read_manifest
from appliance.training.devsets import write_protocols

N_OK, N_FAIL = 10, 5
PROTOCOLS = ("real_normal_only", "real_normal_failure")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src, dst)


def build(data: Path, out: Path, fold: DevFold, seed: int = 0) -> list[Path]:
    """Write the fold's two manifests (and image links) into ``out``; returns the CSV paths."""
    rng = np.random.default_rng(seed)
    samples = read_manifest(data)
    rows: list[tuple[str, str, str, str, str]] = []  # role calib_fail: a failure calibration frame

    web = [s for s in samples if s.source == fold.web_camera and s.label in ("ok", "failure")]
    ok = [web[i] for i in rng.permutation(len(web)) if web[i].label == "ok"]
    failure = [web[i] for i in rng.permutation(len(web)) if web[i].label == "failure"]
    calibration = [(s, "calibrate") for s in ok[:N_OK]] + [(s, "calib_fail") for s in failure[:N_FAIL]]
    test = ok[N_OK:] + failure[N_FAIL:]
    test = [test[i] for i in rng.permutation(len(test))]
    for sample, role in calibration + [(s, "test") for s in test]:
        name = f"{fold.web_camera}/{sample.path.name}"
        _link(sample.path, out / name)
        rows.append((name, sample.label, fold.web_camera, role, ""))

    bed = [s for s in samples if s.source == "bedcam_p1" and s.sequence in fold.sequences]
    rows += _fixed_camera_rows(out, f"bedcam_real{fold.suffix}", bed, list(fold.sequences))
    chamber = [s for s in samples if s.source == CHAMBER and s.label == "ok"]
    events = sorted({s.sequence for s in chamber})
    rows += _fixed_camera_rows(out, f"chamber{fold.suffix}", chamber, events)
    return write_protocols(out, rows, PROTOCOLS)


def _fixed_camera_rows(
    out: Path, camera: str, frames: list[Sample], prints: list[str]
) -> list[tuple[str, str, str, str, str]]:
    """A fixed camera's normal frames as rows, print by print in time order: 10 frames spread over its first
    two prints calibrate, the rest of those two are left out, every later print is test rows (``sequence``
    = the print, for ``layerwatch eval --prints``)."""
    ordered = sorted(frames, key=lambda s: (prints.index(s.sequence), s.path.name))
    first_two = set(prints[:2])
    calib = [s for s in ordered if s.sequence in first_two]
    picks = [calib[int(i)] for i in np.linspace(0, len(calib) - 1, min(N_OK, len(calib)))]
    rows = []
    for sample in ordered:
        if sample.sequence in first_two and sample not in picks:
            continue
        name = f"{camera}/{sample.sequence}_{sample.path.name}"
        _link(sample.path, out / name)
        role = "calibrate" if sample in picks else "test"
        rows.append((name, "ok", camera, role, sample.sequence if role == "test" else ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lw-real"))
    parser.add_argument("--fold", choices=sorted(FOLDS), default="a")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in build(args.data, args.out / args.fold, FOLDS[args.fold], args.seed):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
