"""Circuit breaker: after repeated failures the judge is not asked for a while.

States: ``closed`` (calls go out), ``open`` (local decisions only until the cool-off has passed),
``half_open`` (the cool-off has passed: exactly one trial call goes out; success closes the
breaker, failure opens it for another cool-off). :meth:`trip` opens it at once, for failures that
retrying cannot fix (credentials refused). All times are seconds on a monotonic clock.
"""

from __future__ import annotations

import enum
import logging
import threading

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; ``failures`` of them in a row open it for ``cooloff_s`` seconds."""

    def __init__(self, failures: int, cooloff_s: float):
        self.failures = failures
        self.cooloff_s = cooloff_s
        self.consecutive = 0
        self.reason = ""
        self._opened_at: float | None = None
        self._trial_out = False
        self._lock = threading.Lock()

    def state(self, now: float) -> BreakerState:
        with self._lock:
            return self._state(now)

    def _state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self.cooloff_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self, now: float) -> bool:
        """May a call go out now? In ``half_open`` only the first caller gets True (the trial)."""
        with self._lock:
            state = self._state(now)
            if state == BreakerState.CLOSED:
                return True
            if state == BreakerState.HALF_OPEN and not self._trial_out:
                self._trial_out = True
                logger.info("cloud judge: cool-off over, one trial call")
                return True
            return False

    def success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                logger.info("cloud judge: reachable again, breaker closed")
            self.consecutive = 0
            self._opened_at = None
            self._trial_out = False
            self.reason = ""

    def failure(self, now: float, reason: str) -> None:
        with self._lock:
            self.consecutive += 1
            if self._opened_at is not None or self.consecutive >= self.failures:
                self._open(now, reason)

    def trip(self, now: float, reason: str) -> None:
        """Open at once (e.g. credentials refused after one refresh)."""
        with self._lock:
            self.consecutive = max(self.consecutive + 1, self.failures)
            self._open(now, reason)

    def _open(self, now: float, reason: str) -> None:
        self._opened_at = now
        self._trial_out = False
        self.reason = reason
        logger.warning(
            "cloud judge: %d failure(s) in a row (%s): local decisions only for %.1f s",
            self.consecutive, reason, self.cooloff_s,
        )  # fmt: skip
