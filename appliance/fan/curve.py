"""Fan duty from CPU temperature: a piecewise-linear curve with hysteresis and a minimum duty.

``hardware.fan.curve`` is a list of ``[°C, duty %]`` points; between two points the duty is
interpolated linearly, below the first and above the last it stays flat. The default
``[[45, 0], [50, 30], [65, 60], [75, 100]]`` keeps the fan off below 45 °C and at full speed from
75 °C.

**Hysteresis** (``hysteresis_c``): the duty follows a rising temperature at once, but a falling one
only after it has dropped ``hysteresis_c`` degrees: the curve is read at a reference temperature
that may lag up to ``hysteresis_c`` above the measured one. A fan that switched on at 45 °C thus
stops below 42 °C, not at every wobble around 45 °C.

**Minimum duty** (``min_duty_percent``): many fans stall below some duty; any non-zero duty below
it is raised to it. Duties are returned as fractions 0.0-1.0.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)


class FanCurve:
    def __init__(self, points: Sequence[tuple[float, float]], hysteresis_c: float, min_duty_percent: float):
        if not points:
            raise ValueError("a fan curve needs at least one point")
        self.points = [(float(t), float(d) / 100.0) for t, d in points]
        self.hysteresis_c = hysteresis_c
        self.min_duty = min_duty_percent / 100.0
        self.reference_c: float | None = None

    def raw(self, temperature_c: float) -> float:
        """The curve itself (fraction), without hysteresis or minimum duty."""
        points = self.points
        if temperature_c <= points[0][0]:
            return points[0][1]
        for (t0, d0), (t1, d1) in itertools.pairwise(points):
            if temperature_c <= t1:
                return d0 + (d1 - d0) * (temperature_c - t0) / (t1 - t0)
        return points[-1][1]

    def duty(self, temperature_c: float) -> float:
        """The duty (0.0-1.0) for this reading, remembering the reference for the hysteresis."""
        if self.reference_c is None or temperature_c >= self.reference_c:
            reference = temperature_c
        else:
            reference = max(temperature_c, min(self.reference_c, temperature_c + self.hysteresis_c))
        self.reference_c = reference
        duty = self.raw(reference)
        if 0 < duty < self.min_duty:
            duty = self.min_duty
        return min(1.0, max(0.0, duty))

    def reset(self) -> None:
        self.reference_c = None
