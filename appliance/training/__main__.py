"""``python -m appliance.training``: reproduce the shipped model in ``models/`` from the training data.

The shipped recipe (third design) fine-tunes nothing: the network is EfficientNet-Lite0 with its ImageNet
weights as they are, at 448 x 336, max pooled (``--steps`` > 0 brings back the second design's episodic
fine-tuning). What "training" fits is the two linear failure heads on its int8 features.

1. per dev fold (:data:`appliance.training.data.FOLDS`), build the **dev models** (seeds ``seed`` ..
   ``seed + dev_seeds - 1``): heads fitted on everything but that fold's hold-out, exported;
2. measure each dev model on **real frames only** (:mod:`appliance.training.dev_figures`: the fold's
   held-out web source as a camera, the bed camera's held-out prints and the in-chamber camera's events,
   manifest seeds ``0 .. eval_seeds - 1``) in every protocol of ``layerwatch eval``; the figures go to
   ``--work/dev-figures.json`` and the log, pooled per camera and protocol. Nothing is tuned on them;
3. build the **shipped model** (seed ``seed``) with the same recipe on all the data, export it to ``--out``
   and measure its latency (``--dev-only`` stops after step 2: for trying a recipe, e.g. ``--width 320
   --height 240``).

About 8 minutes a model on 2 cores, most of it int8 calibration (ONNX Runtime's percentile histograms and
LiteRT's calibrator over 128 frames). ``--skip-dev`` builds only the shipped model.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from appliance.training.backbone import EmbeddingNet
from appliance.training.data import DEFAULT_DATA, FOLDS, read_manifest
from appliance.training.dev_figures import dev_runs, measure
from appliance.training.pipeline import write_bundle
from appliance.training.train import train

REPO = Path(__file__).resolve().parents[2]
logger = logging.getLogger("appliance.training")


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _train_and_export(
    samples: list,
    args: argparse.Namespace,
    out: Path,
    extra: dict,
    shipped: bool = False,
    seed: int | None = None,
) -> dict:
    seed = args.seed if seed is None else seed
    _seed(seed)
    net = EmbeddingNet((args.width, args.height), pooling=args.pooling, cell_pool=args.cell_pool)
    if args.steps:
        train(net, samples, seed, args.steps)
    return write_bundle(
        net,
        samples,
        out,
        seed=seed,
        threshold=0.5,
        uncertain_band=0.1,
        extra=extra,
        ship_tflite_fp32=not shipped,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.training", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the training data folder")
    parser.add_argument("--out", type=Path, default=REPO / "models", help="where the shipped bundle goes")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/lw-train"), help="dev manifests and dev model"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--height", type=int, default=336)
    parser.add_argument(
        "--steps", type=int, default=0, help="fine-tuning steps (0: ImageNet as is, the shipped recipe)"
    )
    parser.add_argument("--pooling", choices=("max", "mean"), default="max", help="the embedding's pooling")
    parser.add_argument("--cell-pool", type=int, default=2, help="heatmap cells: N x N stride-32 cells")
    parser.add_argument("--dev-seeds", type=int, default=1, help="dev models per fold")
    parser.add_argument(
        "--folds",
        default=",".join(FOLDS),
        help="dev folds, comma-separated: each holds out a web source and bed-camera prints",
    )
    parser.add_argument("--eval-seeds", type=int, default=3, help="real-frame manifest seeds per dev model")
    parser.add_argument("--skip-dev", action="store_true", help="train only the shipped model")
    parser.add_argument("--dev-only", action="store_true", help="stop after measuring the dev models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    start = time.monotonic()
    samples = read_manifest(args.data)
    recipe = {
        "steps": args.steps, "pooling": args.pooling, "cell_pool": args.cell_pool, "dev_folds": args.folds
    }  # fmt: skip
    folds = [FOLDS[name] for name in args.folds.split(",")]
    runs = dev_runs(args.work, folds, args.seed, args.dev_seeds)
    if not args.skip_dev:
        for run in runs:
            dev_samples = [s for s in samples if not run.fold.holds_out(s)]
            extra = {**recipe, "role": "dev", "seed": run.seed, "fold": run.fold.name}
            _train_and_export(dev_samples, args, run.directory, extra, seed=run.seed)
        figures = measure(runs, args.data, args.work, args.eval_seeds)
        (args.work / "dev-figures.json").write_text(json.dumps(figures, indent=1) + "\n")
        if args.dev_only:
            logger.info("dev models measured in %.0f s", time.monotonic() - start)
            return 0
    staging = args.work / "shipped"
    shutil.rmtree(staging, ignore_errors=True)
    extra = {**recipe, "role": "shipped"}
    _train_and_export(samples, args, staging, extra, shipped=True)
    args.out.mkdir(parents=True, exist_ok=True)
    # copy the model files first and the manifest last, once every file it names is in place
    for path in sorted(staging.glob("layerwatch*")):
        if path.suffix != ".json":
            shutil.copy2(path, args.out / path.name)
    shutil.copy2(staging / "layerwatch.json", args.out / "layerwatch.json")
    logger.info("done in %.0f s", time.monotonic() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
