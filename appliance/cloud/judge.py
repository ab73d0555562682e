"""The cloud judge as the pipeline sees it: budget, circuit breaker, timeout, telemetry.

:meth:`CloudJudge.judge` is called from the analysis loop for a frame the detector marked
``uncertain``. It returns at the latest ``cloud.timeout_s`` seconds later:

1. no call while the circuit breaker is open, while the previous call is still out (one call at a
   time: a slow cloud cannot pile up threads) or when the budget is spent: None at once;
2. otherwise the frame is cropped, downscaled and encoded (:mod:`.privacy`), the budget charged,
   and the plugin asked on a daemon worker thread while the loop waits up to the timeout;
3. the verdict is used when it arrives in time, is valid (:mod:`.verdict`) and at least
   ``min_confidence`` sure; everything else is None: the local decision stands.

A late answer is dropped (its cost and breaker outcome are still recorded). Telemetry goes into
``context.telemetry`` (numbers only): ``cloud_state`` (see :class:`CloudState`), ``cloud_calls``,
``cloud_verdicts``, ``cloud_no_verdict``, ``cloud_timeouts``, ``cloud_late``, ``cloud_failures``,
``cloud_skipped``, ``cloud_agreement`` (share of verdicts that agree with the side of the
threshold the local score was on), ``cloud_calls_hour``/``_day``/``_month`` and
``cloud_spend_usd`` (this month's estimate).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.cloud.backend import JudgeBackend, JudgeRequest
from appliance.cloud.breaker import BreakerState, CircuitBreaker
from appliance.cloud.budget import CallBudget
from appliance.cloud.privacy import prepare_upload
from appliance.cloud.verdict import SYSTEM_PROMPT, USER_PROMPT, CloudVerdict, parse_verdict
from appliance.config.cloud import CloudConfig
from appliance.detector import Detection
from appliance.errors import CloudCredentialsError, CloudError, CloudReplyError, CloudUnavailableError
from appliance.sources import Frame

logger = logging.getLogger(__name__)


class CloudState(enum.IntEnum):
    """``cloud_state`` in telemetry (a number, as telemetry holds numbers)."""

    OFF = 0  # no judge configured: every decision is local
    READY = 1  # uncertain frames go to the judge
    UNREACHABLE = 2  # breaker open after failures: local decisions until the cool-off ends
    OVER_BUDGET = 3  # hourly/daily calls or the month's spend used up: local decisions
    CREDENTIALS = 4  # credentials refused after one refresh: local decisions until the cool-off ends


@dataclass
class _Call:
    """One call in flight, shared between the loop (waiting) and the worker (answering)."""

    camera: str
    purpose: str
    local_lean: bool  # which side of the threshold the local score was on
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    result: bool | None = None
    abandoned: bool = False


class CloudJudge:
    """Implements the pipeline's ``Judge`` protocol on top of one :class:`JudgeBackend`."""

    def __init__(
        self,
        config: CloudConfig,
        backend: JudgeBackend,
        budget: CallBudget,
        telemetry: dict[str, float],
        lean_threshold: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.backend = backend
        self.budget = budget
        self.telemetry = telemetry
        self.lean_threshold = lean_threshold
        self.clock = clock
        self.breaker = CircuitBreaker(config.breaker.failures, config.breaker.cooloff_s)
        self.counts = dict.fromkeys(
            ("calls", "verdicts", "no_verdict", "timeouts", "late", "failures", "skipped", "agree"), 0
        )
        self._busy = threading.Lock()
        self._latest: dict[str, CloudVerdict] = {}
        self._latest_lock = threading.Lock()
        self._state = CloudState.READY
        logger.info(
            "cloud judge %s on: at most %d calls/h, %d calls/day, %.2f USD/month; timeout %.1f s",
            backend.name, config.budget.calls_per_hour, config.budget.calls_per_day,
            config.budget.monthly_spend_usd, config.timeout_s,
        )  # fmt: skip
        self.publish()

    # -- the Judge protocol -------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``cloud.mode``: ``uncertain`` or ``always`` (read by the camera pipeline)."""
        return self.config.mode

    def judge(self, camera: str, frame: Frame, detection: Detection, purpose: str) -> bool | None:
        """True (failure), False (ok) or None (no verdict); never waits longer than ``timeout_s``."""
        start = self.clock()
        deadline = start + self.config.timeout_s
        if not self._busy.acquire(blocking=False):
            return self._skip(camera, "the previous call is still out")
        handed_over = False
        try:
            if not self.breaker.allow(start):
                return self._skip(camera, f"breaker open ({self.breaker.reason})")
            if self.budget.refusal() is None:
                try:
                    jpeg = prepare_upload(frame, camera, self.config.privacy)
                except CloudError as exc:
                    logger.warning("camera %s: %s", camera, exc)
                    return None
            refusal = self.budget.reserve()  # checks again and charges the call
            if refusal is not None:
                return self._skip(camera, f"budget: {refusal}")
            call = _Call(camera, purpose, detection.score >= self.lean_threshold)
            request = JudgeRequest(jpeg, USER_PROMPT, SYSTEM_PROMPT, deadline)
            self.counts["calls"] += 1
            worker = threading.Thread(
                target=self._work, args=(request, call), name="cloud-judge", daemon=True
            )
            worker.start()
            handed_over = True  # the worker releases the busy lock when it is done
        finally:
            if not handed_over:
                self._busy.release()
                self.publish()
        call.done.wait(max(0.0, deadline - self.clock()))
        with call.lock:
            if not call.done.is_set():
                call.abandoned = True
                self.counts["timeouts"] += 1
                logger.warning(
                    "camera %s: no verdict from the cloud judge within %.1f s (%s): local decision stands",
                    camera, self.config.timeout_s, purpose,
                )  # fmt: skip
                self.publish()
                return None
            return call.result

    # -- the worker ---------------------------------------------------------------------------
    def _work(self, request: JudgeRequest, call: _Call) -> None:
        result: bool | None = None
        try:
            result = self._ask(request, call)
        finally:
            self.publish()  # before the loop hears of it, so telemetry is current when judge() returns
            self._busy.release()
            with call.lock:
                call.result = result
                call.done.set()
                late = call.abandoned
            if late:
                self.counts["late"] += 1
                logger.info("camera %s: late cloud verdict %s dropped", call.camera, result)
                self.publish()

    def _ask(self, request: JudgeRequest, call: _Call) -> bool | None:
        began = time.monotonic()
        try:
            reply = self.backend.ask(request)
            self.budget.settle(reply.input_tokens, reply.output_tokens)
            verdict = parse_verdict(reply.text)
        except CloudCredentialsError as exc:
            self.counts["failures"] += 1
            self.breaker.trip(self.clock(), "credentials")
            logger.error("camera %s: cloud judge credentials refused: %s", call.camera, exc)
            return None
        except CloudUnavailableError as exc:
            self.counts["failures"] += 1
            self.breaker.failure(self.clock(), "unreachable")
            logger.warning("camera %s: cloud judge unavailable: %s", call.camera, exc)
            return None
        except CloudReplyError as exc:
            self.breaker.success()  # the service answered; the answer just is no verdict
            self.counts["no_verdict"] += 1
            logger.warning("camera %s: cloud judge gave no verdict: %s", call.camera, exc)
            return None
        except Exception as exc:  # a plugin bug must not end the worker silently
            self.counts["failures"] += 1
            self.breaker.failure(self.clock(), "error")
            logger.error("camera %s: cloud judge failed: %s", call.camera, exc, exc_info=True)
            return None
        self.breaker.success()
        return self._use(verdict, call, time.monotonic() - began)

    def _use(self, verdict: CloudVerdict, call: _Call, seconds: float) -> bool | None:
        self.counts["verdicts"] += 1
        self.counts["agree"] += int(verdict.failure == call.local_lean)
        logger.info(
            "camera %s: cloud verdict %s (%s, confidence %.2f, %.1f s, %s): %s",
            call.camera, "failure" if verdict.failure else "ok", verdict.kind, verdict.confidence,
            seconds, call.purpose, verdict.description[:120],
        )  # fmt: skip
        if verdict.confidence < self.config.min_confidence:
            self.counts["no_verdict"] += 1
            return None
        with self._latest_lock:
            self._latest[call.camera] = verdict
        return verdict.failure

    def describe(self, camera: str) -> dict[str, object] | None:
        """The verdict behind the last True/False this judge returned for ``camera`` (for alerts)."""
        with self._latest_lock:
            verdict = self._latest.get(camera)
        return None if verdict is None else verdict.model_dump()

    # -- state and telemetry ------------------------------------------------------------------
    def _skip(self, camera: str, why: str) -> bool | None:
        """Count a frame the judge was not asked about; None (no verdict) for the caller to return."""
        self.counts["skipped"] += 1
        logger.debug("camera %s: cloud judge not asked: %s", camera, why)
        self.publish()
        return None

    @property
    def state(self) -> CloudState:
        breaker = self.breaker.state(self.clock())
        if breaker != BreakerState.CLOSED:
            return CloudState.CREDENTIALS if self.breaker.reason == "credentials" else CloudState.UNREACHABLE
        if self.budget.refusal() is not None:
            return CloudState.OVER_BUDGET
        return CloudState.READY

    def publish(self) -> None:
        """Write the counters into the telemetry dict (and log a change of state)."""
        state = self.state
        if state != self._state:
            level = logging.INFO if state == CloudState.READY else logging.WARNING
            logger.log(level, "cloud judge: %s -> %s", self._state.name.lower(), state.name.lower())
            self._state = state
        counts = self.counts
        self.telemetry.update({f"cloud_{k}": float(v) for k, v in counts.items() if k != "agree"})
        self.telemetry.update(self.budget.snapshot())
        self.telemetry["cloud_state"] = float(state)
        if counts["verdicts"]:
            self.telemetry["cloud_agreement"] = round(counts["agree"] / counts["verdicts"], 4)
