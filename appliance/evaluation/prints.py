"""Per print: ``layerwatch eval --prints`` replays each print through the service's decision engine.

A print is the test rows of one camera with one ``sequence`` (no ``sequence``: all the camera's test rows),
in the CSV's (time) order. Each scored frame's vote goes to a fresh
:class:`appliance.decision.DecisionEngine` per print with the service's default
:class:`appliance.config.model.DecisionConfig` (window vote, verification burst, cooldown), as
:meth:`appliance.service.pipeline.CameraPipeline.step` feeds it. The verification burst's frames are the
print's next rows; ``now`` is the row's ``time_s`` (seconds since the print's start) or its position in the
print times ``interval_s`` (the service's analysis interval, 2 s by default).

What happens at an alert, as a user would have it:

- before the print's first ``failure`` row (or in a print without one) it is a **false alarm**: the user
  answers "false alarm", which acknowledges it (the engine waits out ``cooldown_s``), and the print goes on;
- at or after the first ``failure`` row the print is **caught**: the printer is paused, so the engine sees
  no more of that print. ``frames_to_alert`` counts rows from the first failure row to the alert row
  (0: the alert came on that row), ``seconds_to_alert`` the time between them.

A row whose image cannot be read keeps its position (and time) in the print but casts no vote. The print's
duration (for false alarms per printing hour) is its last row's time minus its first row's, plus one
median gap between rows (``interval_s`` for a one-row print).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from appliance.config.model import DecisionConfig, ServiceConfig
from appliance.decision import DecisionEngine
from appliance.detector import Detection, Verdict
from appliance.evaluation.manifest import EvalRow

DEFAULT_INTERVAL_S = ServiceConfig().analysis_interval_s


def votes_failure(detection: Detection, decision: DecisionConfig) -> bool:
    """The frame's vote as the service casts it without a cloud judge
    (:meth:`appliance.service.pipeline.CameraPipeline.resolve`): ``failure`` votes failure, ``ok`` does
    not, ``uncertain`` as ``uncertain_counts_as_failure`` says (default: not)."""
    if detection.verdict is Verdict.UNCERTAIN:
        return decision.uncertain_counts_as_failure
    return detection.verdict is Verdict.FAILURE


@dataclass(frozen=True)
class PrintAlert:
    frame: int  # position of the alert's row in its print (0-based)
    line: int  # the row's line in the CSV
    time_s: float
    false_alarm: bool


@dataclass
class PrintRun:
    """One print being replayed."""

    camera: str
    sequence: str
    engine: DecisionEngine
    times: list[float] = field(default_factory=list)
    failure_rows: int = 0
    first_failure: int | None = None
    first_failure_line: int | None = None
    alerts: list[PrintAlert] = field(default_factory=list)
    caught: PrintAlert | None = None

    def duration_s(self, interval_s: float) -> float:
        if not self.times:
            return 0.0
        gaps = [b - a for a, b in zip(self.times, self.times[1:], strict=False) if b > a]
        gap = statistics.median(gaps) if gaps else interval_s
        return max(self.times) - min(self.times) + gap

    def as_dict(self, interval_s: float) -> dict[str, Any]:
        caught = self.caught
        return {
            "camera": self.camera,
            "sequence": self.sequence,
            "frames": len(self.times),
            "failure_frames": self.failure_rows,
            "first_failure_frame": self.first_failure,
            "first_failure_line": self.first_failure_line,
            "caught": caught is not None,
            "frames_to_alert": None if caught is None else caught.frame - (self.first_failure or 0),
            "seconds_to_alert": None if caught is None else round(caught.time_s - self._first_failure_s(), 3),
            "false_alarms": sum(a.false_alarm for a in self.alerts),
            "alerts": [
                {"frame": a.frame, "line": a.line, "time_s": round(a.time_s, 3), "false_alarm": a.false_alarm}
                for a in self.alerts
            ],
            "duration_s": round(self.duration_s(interval_s), 3),
        }

    def _first_failure_s(self) -> float:
        return self.times[self.first_failure] if self.first_failure is not None else 0.0


class PrintReplay:
    """Every print of a run, fed one row at a time in stream order (:meth:`observe`)."""

    def __init__(self, decision: DecisionConfig | None = None, interval_s: float = DEFAULT_INTERVAL_S):
        self.decision = decision or DecisionConfig()
        self.interval_s = interval_s
        self.prints: dict[tuple[str, str], PrintRun] = {}

    def observe(self, row: EvalRow, detection: Detection | None) -> PrintAlert | None:
        """Record one test row of its print: its time, its label, and (``detection`` None: the image could
        not be read) its vote; returns the alert it raised, if any."""
        key = (row.camera, row.sequence or "")
        run = self.prints.get(key)
        if run is None:
            run = self.prints[key] = PrintRun(row.camera, key[1], DecisionEngine(row.camera, self.decision))
        position = len(run.times)
        now = row.time_s if row.time_s is not None else position * self.interval_s
        run.times.append(now)
        if row.label == "failure":
            run.failure_rows += 1
            if run.first_failure is None:
                run.first_failure, run.first_failure_line = position, row.line
        if detection is None or run.caught is not None:
            return None  # an unreadable frame votes nothing; a caught print was paused at its alert
        transition = run.engine.observe(votes_failure(detection, self.decision), detection.score, now)
        if transition is None or transition.alert is None:
            return None
        alert = PrintAlert(position, row.line, now, false_alarm=run.first_failure is None)
        run.alerts.append(alert)
        if alert.false_alarm:
            run.engine.acknowledge(now)  # the user's "false alarm" acknowledges it
        else:
            run.caught = alert
        return alert

    def summary(self, camera: str | None = None) -> dict[str, Any]:
        """The figures over every print (of ``camera`` only, if given)."""
        runs = [r for r in self.prints.values() if camera is None or r.camera == camera]
        failed = [r for r in runs if r.first_failure is not None]
        caught = [r.as_dict(self.interval_s) for r in failed if r.caught is not None]
        false_alarms = sum(a.false_alarm for r in runs for a in r.alerts)
        hours = sum(r.duration_s(self.interval_s) for r in runs) / 3600
        frames_to_alert = [c["frames_to_alert"] for c in caught]
        seconds_to_alert = [c["seconds_to_alert"] for c in caught]
        return {
            "prints": len(runs),
            "failed_prints": len(failed),
            "good_prints": len(runs) - len(failed),
            "prints_caught": len(caught),
            "catch_rate": round(len(caught) / len(failed), 4) if failed else None,
            "frames_to_alert_median": statistics.median(frames_to_alert) if caught else None,
            "seconds_to_alert_median": round(statistics.median(seconds_to_alert), 3) if caught else None,
            "false_alarms": false_alarms,
            "prints_with_false_alarm": sum(any(a.false_alarm for a in r.alerts) for r in runs),
            "false_alarms_per_print": round(false_alarms / len(runs), 4) if runs else None,
            "printing_hours": round(hours, 4),
            "false_alarms_per_hour": round(false_alarms / hours, 4) if hours > 0 else None,
        }

    def per_print(self, camera: str | None = None) -> list[dict[str, Any]]:
        return [
            r.as_dict(self.interval_s) for r in self.prints.values() if camera is None or r.camera == camera
        ]
