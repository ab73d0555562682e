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
from appliance.training.data import DEFAULT_DATA, is_heldout, read_manifest
from appliance.training.pipeline import write_bundle
from appliance.training.train import train

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.training", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the training data folder")
    parser.add_argument("--out", type=Path, default=REPO / "models", help="where the bundle is written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument(
        "--steps", type=int, default=300, help="episodic training steps (0: ImageNet features)"
    )
    parser.add_argument(
        "--dev", action="store_true", help="leave the dev-eval sources out (scripts/make_dev_manifests.py)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    start = time.monotonic()
    samples = read_manifest(args.data)
    if args.dev:
        samples = [s for s in samples if not is_heldout(s)]
    size = (args.width, args.height)
    net = EmbeddingNet(size)
    if args.steps:
        train(net, samples, args.seed, args.steps)
    scoring = {"scale": 12.0, "margin": 0.0}
    write_bundle(net, samples, args.out, seed=args.seed, scoring=scoring, threshold=0.5, uncertain_band=0.1)
    logging.info("done in %.0f s", time.monotonic() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
