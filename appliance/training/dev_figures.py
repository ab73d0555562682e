"""The dev models' figures on real frames: every protocol of ``layerwatch eval``, pooled per camera.

Per dev model (its fold's hold-out never seen in training) and manifest seed
(:mod:`appliance.training.real_devsets`), the fold's cameras go through:

* ``normal-only``: 10 normal calibration frames (static);
* ``10 ok + 5 failure``: static;
* ``asked``: 10 ok + 5 failure, then a test frame's label reaches the learner after it is scored if the
  appliance would have asked (a failure or uncertain verdict, or the ask policy's question);
* ``capacity``: 10 ok + 5 failure, then every test frame's label after it is scored (``--feedback all``).

Every protocol runs with ``--prints``: the fixed cameras' test rows carry their print (``sequence``), so their
false alarms are also counted per print through the real decision path. Per camera and protocol the summary
has each run's F1 and AUROC, the mean false-alarm rate, the mean answer rate (and its split) and the false
alarms per print. ``python -m appliance.training.dev_figures --work DIR`` measures dev models already trained
into ``DIR`` (``python -m appliance.training --dev-only`` trains and measures).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from appliance.training.data import DEFAULT_DATA, FOLDS, DevFold

logger = logging.getLogger("appliance.training")

#: protocol -> (manifest stem, feedback)
PROTOCOLS: dict[str, tuple[str, str | None]] = {
    "normal-only": ("real_normal_only", None),
    "10 ok + 5 failure": ("real_normal_failure", None),
    "asked": ("real_normal_failure", "asked"),
    "capacity": ("real_normal_failure", "all"),
}


class DevRun(NamedTuple):
    """One dev model: its bundle folder, its fold and its seed."""

    directory: Path
    fold: DevFold
    seed: int


def measure(runs: list[DevRun], data: Path, work: Path, eval_seeds: int) -> dict[str, Any]:
    """Every dev model on its fold's real-frame manifests, in every protocol; pooled per camera."""
    from appliance.evaluate import run_eval
    from appliance.training import real_devsets

    pooled: dict[str, dict[str, list[dict]]] = {}
    for run in runs:
        for manifest_seed in range(eval_seeds):
            out = work / f"real-s{manifest_seed}" / run.fold.name
            csvs = {path.stem: path for path in real_devsets.build(data, out, run.fold, manifest_seed)}
            for protocol, (stem, feedback) in PROTOCOLS.items():
                result = run_eval(
                    csvs[stem], run.directory / "layerwatch.json", feedback=feedback, prints=True
                )
                tag = f"{protocol.replace(' ', '')}-s{manifest_seed}"
                (run.directory / f"eval-real-{tag}.json").write_text(json.dumps(result, indent=1) + "\n")
                for camera, figures in result["cameras"].items():
                    pooled.setdefault(camera, {}).setdefault(protocol, []).append(figures)
    summary: dict[str, dict[str, dict]] = {}
    for camera, by_protocol in sorted(pooled.items()):
        for protocol, results in by_protocol.items():
            summary.setdefault(camera, {})[protocol] = entry = _pool(results)
            logger.info("dev %s, %s: %s", camera, protocol, json.dumps(entry))
    return summary


def _mean(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return round(float(np.mean(values)), 4) if values else None


def _pool(results: list[dict]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "f1_per_run": [r["f1"] for r in results if r.get("f1") is not None],
        "auroc_per_run": [r["auroc"] for r in results if r.get("auroc") is not None],
        "false_alarm_rate": _mean(results, "false_alarm_rate"),
        "false_alarms": sum(r["fp"] for r in results),
        "normal_frames": sum(r["fp"] + r["tn"] for r in results),
    }
    if any("answer_rate" in r for r in results):
        entry |= {k: _mean(results, k) for k in ("answer_rate",)}
        entry |= {k: sum(r.get(k, 0) for r in results) for k in ("answers_ok", "answers_failure")}
    prints = [r["prints"] for r in results if r.get("prints")]
    if prints:
        entry["false_alarms_per_print"] = _mean(prints, "false_alarms_per_print")
        entry["prints_with_false_alarm"] = sum(p.get("prints_with_false_alarm", 0) for p in prints)
        entry["prints"] = sum(p.get("prints", 0) for p in prints)
    return entry


def dev_runs(work: Path, folds: list[DevFold], seed: int, dev_seeds: int) -> list[DevRun]:
    """The dev models' folders under ``work``: ``dev`` (fold a), ``dev-b``, with a seed suffix after the
    first seed."""
    return [
        DevRun(work / (f"dev{fold.work_tag}" + (f"{i}" if i else "")), fold, seed + i)
        for fold in folds
        for i in range(dev_seeds)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appliance.training.dev_figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lw-train"))
    parser.add_argument("--folds", default=",".join(FOLDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-seeds", type=int, default=1)
    parser.add_argument("--eval-seeds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runs = dev_runs(args.work, [FOLDS[name] for name in args.folds.split(",")], args.seed, args.dev_seeds)
    figures = measure(runs, args.data, args.work, args.eval_seeds)
    (args.work / "dev-figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
