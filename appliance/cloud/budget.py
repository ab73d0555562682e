"""How many judge calls are left: per rolling hour, per rolling day and per calendar month's spend.

Every call is charged when it is sent (``cost_per_call_usd``), whether or not its answer arrives in
time: the provider bills it either way. Token prices, when configured, are added once the answer
reports its token counts. The next call is refused when the month's spend plus the expected cost
of one call would pass ``monthly_spend_usd``.

The ledger lives in ``<state_dir>/cloud/budget.json`` and is rewritten atomically after every
change, so a restart (or a crash loop) cannot reset the budget. Times are wall-clock seconds
(``time.time()``); months are UTC calendar months.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.config.cloud import BudgetConfig
from appliance.state_files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

HOUR_S = 3600.0
DAY_S = 86400.0


def _month_of(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m")


class CallBudget:
    """The call and spend ledger. Thread-safe: the analysis loop reserves, the worker settles."""

    def __init__(self, config: BudgetConfig, path: Path | None, clock: Callable[[], float] = time.time):
        self.config = config
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self.calls: list[float] = []  # send times of the calls of the last 24 hours
        self.month = _month_of(clock())
        self.spend_usd = 0.0  # estimated spend this month
        self.month_calls = 0
        self.token_usd_mean = 0.0  # mean token cost per answered call, for the next call's estimate
        self._load()

    # -- queries ----------------------------------------------------------------------------
    def _roll(self, now: float) -> None:
        self.calls = [t for t in self.calls if now - t < DAY_S]
        month = _month_of(now)
        if month != self.month:
            logger.info("cloud budget: new month %s (last month: %.4f USD)", month, self.spend_usd)
            self.month, self.spend_usd, self.month_calls = month, 0.0, 0

    def expected_call_usd(self) -> float:
        """What the next call is expected to cost (US dollars)."""
        return self.config.cost_per_call_usd + self.token_usd_mean

    def refusal(self) -> str | None:
        """Why no call may go out now (a short reason), or None when one may."""
        with self._lock:
            now = self.clock()
            self._roll(now)
            return self._refusal(now)

    def _refusal(self, now: float) -> str | None:
        hour = sum(1 for t in self.calls if now - t < HOUR_S)
        if hour >= self.config.calls_per_hour:
            return f"{hour} calls in the last hour (limit {self.config.calls_per_hour})"
        if len(self.calls) >= self.config.calls_per_day:
            return f"{len(self.calls)} calls in the last 24 h (limit {self.config.calls_per_day})"
        if self.spend_usd + self.expected_call_usd() > self.config.monthly_spend_usd + 1e-12:
            return f"month's spend {self.spend_usd:.4f} USD (limit {self.config.monthly_spend_usd:.2f} USD)"
        return None

    def snapshot(self) -> dict[str, float]:
        """Counters for telemetry: calls in the last hour and day, this month's calls and spend."""
        with self._lock:
            now = self.clock()
            self._roll(now)
            return {
                "cloud_calls_hour": float(sum(1 for t in self.calls if now - t < HOUR_S)),
                "cloud_calls_day": float(len(self.calls)),
                "cloud_calls_month": float(self.month_calls),
                "cloud_spend_usd": round(self.spend_usd, 6),
            }

    # -- changes ----------------------------------------------------------------------------
    def reserve(self) -> str | None:
        """Charge one call if the budget allows it; returns the refusal reason otherwise."""
        with self._lock:
            now = self.clock()
            self._roll(now)
            reason = self._refusal(now)
            if reason is not None:
                return reason
            self.calls.append(now)
            self.month_calls += 1
            self.spend_usd += self.config.cost_per_call_usd
            self._save()
            return None

    def settle(self, input_tokens: int | None, output_tokens: int | None) -> float:
        """Add the token cost of an answered call; returns it (US dollars)."""
        cost = (input_tokens or 0) / 1000 * self.config.usd_per_1k_input_tokens + (
            output_tokens or 0
        ) / 1000 * self.config.usd_per_1k_output_tokens
        with self._lock:
            self.token_usd_mean = cost if self.token_usd_mean == 0 else 0.8 * self.token_usd_mean + 0.2 * cost
            if cost:
                self.spend_usd += cost
            self._save()
        return cost

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict):
                raise TypeError(f"a JSON object was expected, not {type(data).__name__}")
            calls = [float(t) for t in data.get("calls", [])]
            month = str(data["month"])
            spend = float(data["spend_usd"])
            month_calls = int(data.get("month_calls", 0))
            token_mean = float(data.get("token_usd_mean", 0.0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # refusing every call would be safe but silent; count from zero, loudly, the file kept aside
            logger.error("cloud budget: %s unreadable (%s): counting from zero", self.path, exc)
            set_aside(self.path, f"unreadable cloud budget: {exc}")
            return
        self.calls, self.month, self.spend_usd = calls, month, spend
        self.month_calls, self.token_usd_mean = month_calls, token_mean
        self._roll(self.clock())
        logger.info(
            "cloud budget: %d calls in the last 24 h, %.4f USD spent in %s",
            len(self.calls), self.spend_usd, self.month,
        )  # fmt: skip

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "version": 1,
            "calls": [round(t, 3) for t in self.calls],
            "month": self.month,
            "spend_usd": round(self.spend_usd, 8),
            "month_calls": self.month_calls,
            "token_usd_mean": round(self.token_usd_mean, 8),
        }
        try:
            atomic_write_text(self.path, json.dumps(data))
        except OSError as exc:
            logger.warning("cloud budget: cannot write %s: %s", self.path, exc)
