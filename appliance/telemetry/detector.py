"""An explainable anomaly detector for printer sensor figures: each finding says which rule fired, on
which signal, with which numbers.

Rules, per configured signal (``telemetry.signals.<key>``):

* ``out_of_range``: the value is under ``min`` or over ``max``;
* ``runaway``: the signal had reached its target (``target_key`` in the same sample, or the last one
  seen; a target of 0 means the heater is off) and is now more than ``runaway_delta`` away from it;
* ``heater_not_heating``: the target is more than ``runaway_delta`` above the value and the value
  rose less than ``heating_min_rise`` in ``heating_timeout_s`` seconds;
* ``outlier``: robust z-score ``|r - median| / (1.4826 * max(MAD, min_mad))`` over the last
  ``telemetry.zscore_window`` residuals ``r`` (the value, or value - target once a target is reached) is over
  ``zscore``, after ``telemetry.min_samples`` samples;

and per stream (the sensor topic, the printer): ``dropout``, no sample for ``telemetry.dropout_s``
seconds after the first one.

One finding per signal at a time: a rule that fired stays *active* (no milder rule reports on that
signal; a graver one, in the order outlier, heater_not_heating, runaway, out_of_range, does) until the
signal is normal again; a new finding of the same rule and signal waits
``telemetry.cooldown_s``. Pure logic: the caller passes the time (monotonic seconds).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from appliance.config.telemetry import SignalConfig, TelemetryConfig

MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
#: a graver finding on a signal is reported even while a milder one holds it
PRIORITY = {"outlier": 0, "heater_not_heating": 1, "runaway": 2, "out_of_range": 3}


@dataclass(frozen=True)
class Anomaly:
    kind: str  # out_of_range, runaway, heater_not_heating, outlier, dropout
    signal: str  # the signal key, or the stream name for a dropout
    value: float | None
    words: str  # the explanation a person reads
    target: float | None = None
    figures: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signal": self.signal,
            "value": self.value,
            "target": self.target,
            "words": self.words,
            **self.figures,
        }


@dataclass
class _Signal:
    config: SignalConfig
    window: deque[float]
    target: float | None = None
    reached: bool = False
    heat_ref: tuple[float, float] | None = None  # (time, value) of the last seen rise
    active: str | None = None
    last: float | None = None


class AnomalyDetector:
    def __init__(self, config: TelemetryConfig):
        self.config = config
        self.signals = {
            key: _Signal(cfg, deque(maxlen=config.zscore_window)) for key, cfg in config.signals.items()
        }
        self._last_sample: dict[str, float] = {}  # stream -> time of its last sample
        self._dropped: set[str] = set()
        self._fired: dict[tuple[str, str], float] = {}  # (kind, signal) -> time of the last finding

    # -- the streams -------------------------------------------------------------------------
    def observe(self, stream: str, sample: dict[str, Any], now: float) -> list[Anomaly]:
        """Judge one sample (a dict of figures) from ``stream``; returns the new findings."""
        self._last_sample[stream] = now
        found: list[Anomaly] = []
        if stream in self._dropped:
            self._dropped.discard(stream)
        for key, state in self.signals.items():
            value = sample.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            target_key = state.config.target_key
            if target_key and isinstance(sample.get(target_key), int | float):
                self._set_target(state, float(sample[target_key]), now, float(value))
            anomaly = self._judge(key, state, float(value), now)
            if anomaly is not None and self._may_fire(anomaly, now):
                found.append(anomaly)
        return found

    def check_dropouts(self, now: float) -> list[Anomaly]:
        """Streams silent for longer than ``dropout_s`` (each reported once until it is back)."""
        found = []
        for stream, last in self._last_sample.items():
            silent = now - last
            if silent > self.config.dropout_s and stream not in self._dropped:
                self._dropped.add(stream)
                anomaly = Anomaly(
                    "dropout",
                    stream,
                    None,
                    f"{stream}: no sample for {silent:.0f} s (limit {self.config.dropout_s:.0f} s)",
                    figures={"silent_s": round(silent, 1)},
                )
                if self._may_fire(anomaly, now):
                    found.append(anomaly)
        return found

    def latest(self) -> dict[str, float]:
        return {key: s.last for key, s in self.signals.items() if s.last is not None}

    def active(self) -> list[str]:
        return [f"{s.active}:{key}" for key, s in self.signals.items() if s.active] + [
            f"dropout:{stream}" for stream in sorted(self._dropped)
        ]

    # -- the rules ---------------------------------------------------------------------------
    def _set_target(self, state: _Signal, target: float, now: float, value: float) -> None:
        if state.target != target:
            state.target, state.reached, state.heat_ref = target, False, (now, value)
            state.window.clear()

    def _may_fire(self, anomaly: Anomaly, now: float) -> bool:
        key = (anomaly.kind, anomaly.signal)
        last = self._fired.get(key)
        if last is not None and now - last < self.config.cooldown_s:
            return False
        self._fired[key] = now
        return True

    def _judge(self, key: str, state: _Signal, value: float, now: float) -> Anomaly | None:
        cfg = state.config
        state.last = value
        target = state.target if state.target else None  # 0 or unset: the heater is off
        delta = cfg.runaway_delta
        if target is not None and delta is not None and abs(value - target) <= delta:
            state.reached = True
        fired: Anomaly | None = None
        if (cfg.min is not None and value < cfg.min) or (cfg.max is not None and value > cfg.max):
            low = "-inf" if cfg.min is None else f"{cfg.min:g}"
            high = "inf" if cfg.max is None else f"{cfg.max:g}"
            fired = Anomaly("out_of_range", key, value, f"{key} {value:g} out of range [{low}, {high}]")
        elif target is not None and delta is not None and state.reached and abs(value - target) > delta:
            fired = Anomaly(
                "runaway",
                key,
                value,
                f"{key} running away: {value:g}, target {target:g} ({value - target:+.1f}, limit {delta:g})",
                target=target,
            )
        elif target is not None and delta is not None and cfg.heating_timeout_s and value < target - delta:
            ref_time, ref_value = state.heat_ref or (now, value)
            if value >= ref_value + cfg.heating_min_rise:
                state.heat_ref = (now, value)
            elif now - ref_time >= cfg.heating_timeout_s:
                fired = Anomaly(
                    "heater_not_heating",
                    key,
                    value,
                    f"{key} not heating: {value:g} for {now - ref_time:.0f} s, target {target:g} "
                    f"(rose under {cfg.heating_min_rise:g})",
                    target=target,
                )
        else:
            fired = self._outlier(key, state, value, target)
        if fired is None:
            state.active = None
            return None
        if state.active is not None and PRIORITY[fired.kind] <= PRIORITY[state.active]:
            return None  # the same finding (said once), or a milder one while a graver one holds
        state.active = fired.kind
        return fired

    def _outlier(self, key: str, state: _Signal, value: float, target: float | None) -> Anomaly | None:
        cfg = state.config
        if target is not None and not state.reached:
            return None  # heating up: the ramp is no outlier
        residual = value - target if target is not None else value
        window = state.window
        found = None
        if cfg.zscore is not None and len(window) >= self.config.min_samples:
            median = statistics.median(window)
            mad = statistics.median(abs(x - median) for x in window)
            z = abs(residual - median) / (MAD_SCALE * max(mad, cfg.min_mad))
            if z > cfg.zscore:
                found = Anomaly(
                    "outlier",
                    key,
                    value,
                    f"{key} {value:g} is an outlier: robust z {z:.1f} > {cfg.zscore:g} "
                    f"(median {median + (target or 0):g}, MAD {mad:.2f})",
                    target=target,
                    figures={"zscore": round(z, 2)},
                )
        if found is None:
            window.append(residual)  # outliers stay out of the window
        return found
