"""``python -m appliance.training``: reproduce the shipped model in ``models/`` from the training data."""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from appliance.training.backbone import EmbeddingNet
from appliance.training.data import DEFAULT_DATA, read_manifest
from appliance.training.pipeline import write_bundle

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.training", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the training data folder")
    parser.add_argument("--out", type=Path, default=REPO / "models", help="where the bundle is written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--no-train", action="store_true", help="ImageNet features only (no episodic training)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    start = time.monotonic()
    samples = read_manifest(args.data)
    size = (args.width, args.height)
    net = EmbeddingNet(size)
    scoring = {"scale": 12.0, "margin": 0.0}
    write_bundle(net, samples, args.out, seed=args.seed, scoring=scoring, threshold=0.5, uncertain_band=0.1)
    logging.info("done in %.0f s", time.monotonic() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
