"""``python -m appliance.training``: reproduce the shipped model in ``models/`` from the training data.

1. build the dev-eval manifests (:mod:`appliance.training.devsets`) in ``--work``;
2. train the **dev models** (seeds ``seed`` .. ``seed + dev_seeds - 1``) on everything but the dev
   hold-out, export them, choose one scoring table (weights, threshold, uncertainty band) on the dev
   manifests for all of them at once, and measure both protocols with ``run_eval`` for each;
3. train the **shipped model** (seed ``seed``) with the same recipe on all the data, export it to
   ``--out`` with the dev models' scoring table (tuned on data they never saw), and measure its latency.

Fixed seeds (on one machine the files come out byte-identical); 11.6 minutes on 2 quiet cores of the AVX-512
Xeon, 26.5 under other load (two dev models and the shipped one, 192 x 144).
``--skip-dev`` reuses the scoring of the existing dev bundles.
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
from appliance.training.data import DEFAULT_DATA, is_heldout, read_manifest
from appliance.training.devsets import build as build_devsets
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
    scoring: dict,
    extra: dict,
    shipped: bool = False,
    seed: int | None = None,
) -> dict:
    seed = args.seed if seed is None else seed
    _seed(seed)
    net = EmbeddingNet((args.width, args.height))
    if args.steps:
        train(net, samples, seed, args.steps)
    return write_bundle(
        net,
        samples,
        out,
        seed=seed,
        scoring=scoring.get("scoring", {"scale": 12.0}),
        threshold=scoring.get("threshold", 0.5),
        uncertain_band=scoring.get("uncertain_band", 0.1),
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
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--steps", type=int, default=300, help="episodic training steps (0: ImageNet only)")
    parser.add_argument("--dev-seeds", type=int, default=2, help="dev models the scoring is tuned on")
    parser.add_argument("--skip-dev", action="store_true", help="reuse the dev bundles in --work/dev*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    start = time.monotonic()
    samples = read_manifest(args.data)
    recipe = {"steps": args.steps, "dev_heldout": "appliance.training.data.HELDOUT_*"}
    dev_dirs = [args.work / ("dev" if i == 0 else f"dev{i}") for i in range(args.dev_seeds)]
    dev_dir = dev_dirs[0]
    csvs = build_devsets(args.data, args.work / "devsets", args.seed)
    if not args.skip_dev:
        dev_samples = [s for s in samples if not is_heldout(s)]
        for i, directory in enumerate(dev_dirs):
            extra = {**recipe, "role": "dev", "seed": args.seed + i}
            _train_and_export(dev_samples, args, directory, {}, extra, seed=args.seed + i)
        from appliance.evaluate import run_eval
        from appliance.training.tune import tune_bundles

        tuned_table = tune_bundles([d / "layerwatch.json" for d in dev_dirs], csvs)
        logger.info("scoring chosen on the dev manifests: %s", tuned_table)
        for directory in dev_dirs:
            for csv_file in csvs:
                result = run_eval(csv_file, directory / "layerwatch.json")
                (directory / f"eval-{csv_file.stem}.json").write_text(json.dumps(result, indent=1) + "\n")
                logger.info("%s %s: %s", directory.name, csv_file.stem, json.dumps(result["overall"]))
    tuned = json.loads((dev_dir / "layerwatch.json").read_text())
    staging = args.work / "shipped"
    shutil.rmtree(staging, ignore_errors=True)
    extra = {**recipe, "role": "shipped", "scoring_from": "dev model"}
    _train_and_export(samples, args, staging, tuned, extra, shipped=True)
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
