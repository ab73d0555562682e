"""Figures for the cloud judge's closing note, from the JSON ``layerwatch eval`` prints.

    layerwatch eval --manifest dev/manifest.csv > eval.json
    python scripts/judge_figures.py eval.json [--interval-s 2 --cost-per-call-usd 0.003]

Per camera and overall: the share of frames the appliance would send to the judge (the frames the
detector calls ``uncertain``: ``uncertain_rate``), the local-only F1 (``f1``: an uncertain frame
counted by the side of the threshold its score is on) and the F1 with a judge that is right on
every frame it is asked about (``f1_if_uncertain_resolved``). With ``--interval-s`` it also
estimates judge calls per hour and the monthly cost of one camera watching around the clock.
Reads the keys of appliance/evaluate.py's ``run_eval`` (``overall`` and ``cameras``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, metrics) for every camera, then the overall figures."""
    cameras = sorted(result.get("cameras", {}).items())
    return [*cameras, ("overall", result["overall"])]


def figures(metrics: dict[str, Any], interval_s: float | None, cost_per_call_usd: float) -> dict[str, Any]:
    """The closing-note numbers for one row of the evaluation."""
    sent = metrics.get("uncertain_rate")
    local, judged = metrics.get("f1"), metrics.get("f1_if_uncertain_resolved")
    out: dict[str, Any] = {
        "frames": metrics.get("frames"),
        "sent_to_judge": sent,
        "f1_local_only": local,
        "f1_with_perfect_judge": judged,
        "f1_gain": None if local is None or judged is None else round(judged - local, 4),
    }
    if interval_s and sent is not None:
        calls_per_hour = 3600.0 / interval_s * sent
        out["judge_calls_per_hour"] = round(calls_per_hour, 2)
        out["usd_per_month_unbudgeted"] = round(calls_per_hour * 24 * 30 * cost_per_call_usd, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_json", nargs="?", help="output of `layerwatch eval` (default: stdin)")
    parser.add_argument("--interval-s", type=float, help="analysis interval per camera (seconds)")
    parser.add_argument("--cost-per-call-usd", type=float, default=0.003, help="estimated cost of one call")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.eval_json:
        with open(args.eval_json) as handle:
            result = json.load(handle)
    else:
        result = json.load(sys.stdin)
    table = {name: figures(m, args.interval_s, args.cost_per_call_usd) for name, m in rows(result)}
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    header = f"{'camera':<16}{'frames':>8}{'to judge':>11}{'F1 local':>10}{'F1 judged':>11}{'gain':>8}"
    if args.interval_s:
        header += f"{'calls/h':>9}{'USD/month':>11}"
    print(header)
    for name, row in table.items():
        line = (
            f"{name:<16}{row['frames'] or 0:>8}{_pct(row['sent_to_judge']):>11}"
            f"{_num(row['f1_local_only']):>10}{_num(row['f1_with_perfect_judge']):>11}{_num(row['f1_gain']):>8}"
        )
        if args.interval_s:
            line += (
                f"{row.get('judge_calls_per_hour', 0):>9.1f}{row.get('usd_per_month_unbudgeted', 0):>11.2f}"
            )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
