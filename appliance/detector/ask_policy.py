"""Which frames a camera asks about: its learner's least sure ones, within a budget that shrinks as it learns.

A new camera knows little. A frame the learner scores near its operating point (``|logit| < band_logit``,
logits relative to the camera's threshold) may be a failure it is about to miss or a normal frame it is
about to alarm on; either answer moves the camera's boundary most. So in its first prints the camera asks:
the cloud judge if one is configured, otherwise the user (the frame appears as a question in the console and
in the camera's state on MQTT, answerable as any recent frame).

The budget, per camera, from ``[cloud.budget]``:

* ``ask_share``: the share of analysed frames a camera with no answers beyond its calibration may ask about.
  It shrinks as the camera's labels grow: ``ask_share * ask_half_support / (ask_half_support + labels)``
  (half the share at ``ask_half_support`` labels). Credit accrues at that rate per analysed frame and a
  question spends one, so a burst of unsure frames is asked about only as fast as the share allows;
* ``ask_per_hour``: at most this many questions in any rolling hour.

Frames with an ``uncertain`` verdict are asked about whatever this budget says (they go to the judge as
before, under the judge's own call budget); a ``failure`` verdict is answered through its alert. Pure logic:
``now`` is passed in (seconds, monotonic), so tests and ``layerwatch eval --feedback asked`` drive time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

#: most credit a camera can save up: a long quiet stretch does not buy a flood of questions later
MAX_CREDIT = 3.0


@dataclass
class AskPolicy:
    """One camera's question budget (module docstring)."""

    share: float = 0.2
    per_hour: int = 30
    half_support: int = 60
    band_logit: float = 2.0
    credit: float = 0.0
    asked_at: deque[float] = field(default_factory=deque)

    def share_now(self, labels: int) -> float:
        """The share of analysed frames the camera may ask about with ``labels`` labelled frames."""
        return self.share * self.half_support / (self.half_support + max(0, labels))

    def asks(self, logit: float, labels: int, now: float) -> bool:
        """Called once per analysed frame with its logit relative to the camera's threshold (0 = on it) and
        the camera's labelled frames so far: whether to ask about this frame. Charges the budget if so."""
        self.credit = min(MAX_CREDIT, self.credit + self.share_now(labels))
        if not math.isfinite(logit) or abs(logit) >= self.band_logit:
            return False
        while self.asked_at and now - self.asked_at[0] >= 3600.0:
            self.asked_at.popleft()
        if len(self.asked_at) >= self.per_hour or self.credit < 1.0:
            return False
        self.credit -= 1.0
        self.asked_at.append(now)
        return True


def logit_of(score: float) -> float:
    """The logit of a score in [0, 1] (the camera's score is ``sigmoid(logit - threshold)``)."""
    clipped = min(max(float(score), 1e-12), 1.0 - 1e-12)
    return math.log(clipped / (1.0 - clipped))
