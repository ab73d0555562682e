"""Per-frame figures of ``layerwatch eval``: counts, F1, false alarms, uncertain share, AUROC.

Counting: a ``failure`` verdict is a positive, ``ok`` a negative; an ``uncertain`` verdict is counted by
which side of the threshold its score is on (what the device decides alone) and also reported in
``uncertain_rate``; ``f1_if_uncertain_resolved`` counts uncertain frames as correct, as a perfect cloud
judge would make them.

``auroc`` is computed from the scores alone (no threshold): the probability that a failure frame scores
above a normal one, ties counting one half (the Mann-Whitney statistic with average ranks). It is None when
the frames lack one of the two labels. Scores are in [0, 1]; latencies in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.detector import Verdict


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def f1_score(tp: int, fp: int, fn: int) -> float | None:
    return round(2 * tp / (2 * tp + fp + fn), 4) if (2 * tp + fp + fn) else None


def auroc(scores: Sequence[float], failures: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` for the ``failures`` (True = a failure frame): rank-based,
    tied scores get their average rank. None unless both classes are present."""
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(failures, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(values) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(ordered):  # give each run of equal scores the mean of its 1-based ranks
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2
    return round(u / (n_pos * n_neg), 4)


@dataclass
class Tally:
    """Counts of one camera's (or all cameras') scored test frames."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    uncertain: int = 0
    uncertain_errors: int = 0
    resolved_tp: int = 0
    resolved_fp: int = 0
    resolved_fn: int = 0
    latencies: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    failures: list[bool] = field(default_factory=list)

    def add(self, label: str, verdict: Verdict, score: float, threshold: float, latency_ms: float) -> None:
        positive = score >= threshold if verdict is Verdict.UNCERTAIN else verdict is Verdict.FAILURE
        failure = label == "failure"
        if failure and positive:
            self.tp += 1
        elif failure:
            self.fn += 1
        elif positive:
            self.fp += 1
        else:
            self.tn += 1
        if verdict is Verdict.UNCERTAIN:
            self.uncertain += 1
            self.uncertain_errors += int(positive != failure)
            # a perfect judge resolves it: a failure becomes a true positive, a normal frame a true negative
            self.resolved_tp += int(failure)
        else:
            self.resolved_tp += int(failure and positive)
            self.resolved_fp += int(positive and not failure)
            self.resolved_fn += int(failure and not positive)
        self.latencies.append(latency_ms)
        self.scores.append(score)
        self.failures.append(failure)

    def merge(self, other: Tally) -> None:
        for name in ("tp", "fp", "tn", "fn", "uncertain", "uncertain_errors", "resolved_tp", "resolved_fp"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.resolved_fn += other.resolved_fn
        self.latencies.extend(other.latencies)
        self.scores.extend(other.scores)
        self.failures.extend(other.failures)

    def as_dict(self) -> dict[str, Any]:
        total = self.tp + self.fp + self.tn + self.fn
        errors = self.fp + self.fn
        return {
            "frames": total,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": ratio(self.tp, self.tp + self.fp),
            "recall": ratio(self.tp, self.tp + self.fn),
            "f1": f1_score(self.tp, self.fp, self.fn),
            "accuracy": ratio(self.tp + self.tn, total),
            "false_alarm_rate": ratio(self.fp, self.fp + self.tn),
            "auroc": auroc(self.scores, self.failures),
            "uncertain": self.uncertain,
            "uncertain_rate": ratio(self.uncertain, total),
            "errors_in_uncertain": ratio(self.uncertain_errors, errors) if errors else None,
            "f1_if_uncertain_resolved": f1_score(self.resolved_tp, self.resolved_fp, self.resolved_fn),
            "latency_ms_mean": round(float(np.mean(self.latencies)), 3) if self.latencies else None,
            "latency_ms_p95": round(float(np.percentile(self.latencies, 95)), 3) if self.latencies else None,
        }
