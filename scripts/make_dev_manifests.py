#!/usr/bin/env python3
"""Build the development evaluation manifests for ``layerwatch eval`` from ``../shared/data``.

Usage: ``python scripts/make_dev_manifests.py [--data ../shared/data] [--out /tmp/lw-dev] [--seed 0]
[--fold a|b]``

Writes ``heldout_normal_only.csv`` and ``heldout_normal_failure.csv`` (columns ``path,label,camera,role``,
paths relative to the CSV) plus symlinks to the images and the synthetic failure frames they need, all in
``--out``: outside the repository, as the images may not be committed. ``--fold`` picks the development
split (``a``, the first sessions' one, or ``b``: the other 10 bedcam prints and two other web sources;
:data:`appliance.training.data.FOLDS`). What the cameras are and why is
described in :mod:`appliance.training.devsets` (no torch needed).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.training.devsets import main

if __name__ == "__main__":
    raise SystemExit(main())
