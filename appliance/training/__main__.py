"""``python -m appliance.training``: reproduce the shipped model in ``models/`` from the training data.

1. build the dev-eval manifests (:mod:`appliance.training.devsets`) of each dev fold in ``--work``;
2. per fold (:data:`appliance.training.data.FOLDS`), train the **dev models** (seeds ``seed`` ..
   ``seed + dev_seeds - 1``) on everything but that fold's hold-out and export them; choose one scoring
   table (weights, threshold, uncertainty band) on the **first** fold's dev manifests for all its dev models
   at once, give the same table to the other folds' dev models (a validation: prints, web sources and paste
   sources the table was not chosen on), and measure both protocols with ``run_eval`` for every dev model;
3. train the **shipped model** (seed ``seed``) with the same recipe on all the data, export it to
   ``--out`` with the dev models' scoring table (tuned on data they never saw), and measure its latency.

Fixed seeds: on one machine every model after the first one trained in the process comes out
byte-identical, the shipped model included (21.6-24.6 minutes on the 2 cores of the AVX-512 Xeon, four dev
models and the shipped one, 192 x 144); the first one (fold a, seed 0) has come out differently from run to
run, cause not found (models/README.md, "Reproduce").
``--skip-dev`` reuses the scoring of the existing dev bundles (the shipped model is then the first one
trained in the process, so it is not byte-identical to a full run's).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from appliance.training.backbone import EmbeddingNet
from appliance.training.data import DEFAULT_DATA, FOLDS, DevFold, read_manifest
from appliance.training.devsets import build as build_devsets
from appliance.training.pipeline import write_bundle
from appliance.training.train import train

REPO = Path(__file__).resolve().parents[2]
logger = logging.getLogger("appliance.training")


class DevRun(NamedTuple):
    """One dev model: its bundle folder, its fold's dev manifests, the fold and the seed."""

    directory: Path
    csvs: list[Path]
    fold: DevFold
    seed: int


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
    parser.add_argument("--dev-seeds", type=int, default=2, help="dev models per fold")
    parser.add_argument(
        "--folds",
        default=",".join(FOLDS),
        help="dev folds, comma-separated: the scoring is tuned on the first, validated on the others",
    )
    parser.add_argument("--skip-dev", action="store_true", help="reuse the dev bundles in --work/dev*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    start = time.monotonic()
    samples = read_manifest(args.data)
    recipe = {"steps": args.steps, "dev_folds": args.folds}
    folds = [FOLDS[name] for name in args.folds.split(",")]
    # work folders: devsets, dev, dev1 for fold a; devsets-b, dev-b, dev-b1 for fold b
    runs: list[DevRun] = []
    for fold in folds:
        csvs = build_devsets(args.data, args.work / f"devsets{fold.work_tag}", args.seed, fold)
        for i in range(args.dev_seeds):
            directory = args.work / (f"dev{fold.work_tag}" + (f"{i}" if i else ""))
            runs.append(DevRun(directory, csvs, fold, args.seed + i))
    if not args.skip_dev:
        for run in runs:
            dev_samples = [s for s in samples if not run.fold.holds_out(s)]
            extra = {**recipe, "role": "dev", "seed": run.seed, "fold": run.fold.name}
            _train_and_export(dev_samples, args, run.directory, {}, extra, seed=run.seed)
        from appliance.evaluate import run_eval
        from appliance.training.tune import tune_bundles

        tuned_table = tune_bundles(
            [(run.directory / "layerwatch.json", run.csvs) for run in runs if run.fold is folds[0]],
            validate=tuple(run.directory / "layerwatch.json" for run in runs if run.fold is not folds[0]),
        )
        logger.info("scoring chosen on the dev manifests: %s", tuned_table)
        for run in runs:
            for csv_file in run.csvs:
                result = run_eval(csv_file, run.directory / "layerwatch.json")
                (run.directory / f"eval-{csv_file.stem}.json").write_text(json.dumps(result, indent=1) + "\n")
                logger.info("%s %s: %s", run.directory.name, csv_file.stem, json.dumps(result["overall"]))
    tuned = json.loads((runs[0].directory / "layerwatch.json").read_text())
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
