"""The decision engine: from per-frame verdicts to camera states and alerts. Pure logic, no I/O.

Every method takes ``now`` (seconds on a monotonic clock) so tests drive time by hand.

Rules, per camera:

1. Every analysed frame casts a vote into a sliding window of the last ``window`` frames
   (failure or not; the service resolves ``uncertain`` frames before voting).
2. ``watching -> suspect``: the first frame that says failure. The service then analyses a
   **verification burst**: ``verify_frames`` fresh frames, ``verify_interval_s`` apart.
3. ``suspect -> failure`` (an :class:`Alert`) as soon as at least ``verify_min_agree`` burst frames
   say failure *and* at least ``votes`` of the last ``window`` frames do; ``suspect -> watching``
   when the burst can no longer reach that.
4. ``failure`` holds until acknowledged (``-> cooldown``) or until a whole window says ok
   (``-> cooldown``); while unacknowledged, a failure that is still voted after ``cooldown_s``
   raises a repeat alert.
5. ``cooldown -> watching`` once ``cooldown_s`` has passed since the last alert: no alert in between.
6. ``paused`` (monitoring switched off) and ``camera_offline`` override; leaving them restores the
   state the alert history implies.
"""

from __future__ import annotations

import enum
import uuid
from collections import deque
from dataclasses import dataclass, field

from appliance.config.model import DecisionConfig


class CameraState(enum.StrEnum):
    STARTING = "starting"
    WATCHING = "watching"
    SUSPECT = "suspect"
    FAILURE = "failure"
    COOLDOWN = "cooldown"
    CAMERA_OFFLINE = "camera_offline"
    PAUSED = "paused"


@dataclass(frozen=True)
class Alert:
    """A confirmed failure. ``id`` is unique; ``repeat`` counts reminders of the same failure."""

    id: str
    camera: str
    score: float
    votes: int
    window: int
    burst_agree: int
    burst_frames: int
    repeat: int = 0
    #: set for an alert that is not a camera's failure vote: what was seen, in words (a printer
    #: telemetry anomaly of appliance.telemetry), e.g. "nozzle_temp running away: 241.0, target 210"
    cause: str | None = None


@dataclass
class Transition:
    previous: CameraState
    state: CameraState
    alert: Alert | None = None


@dataclass
class _Burst:
    done: int = 0
    agree: int = 0


@dataclass
class DecisionEngine:
    camera: str
    config: DecisionConfig
    state: CameraState = CameraState.STARTING
    votes: deque[bool] = field(init=False)
    last_alert: Alert | None = None
    last_alert_at: float | None = None
    acknowledged: bool = True
    _burst: _Burst | None = None

    def __post_init__(self) -> None:
        self.votes = deque(maxlen=self.config.window)

    # -- queries ------------------------------------------------------------------------------
    @property
    def failure_votes(self) -> int:
        return sum(self.votes)

    @property
    def in_burst(self) -> bool:
        return self._burst is not None

    def burst_needs_every_frame(self) -> bool:
        """In a verification burst that fails unless every remaining frame says failure: a frame the
        detector calls ok would end it, so that is where a second opinion (the judge) pays off."""
        if self._burst is None:
            return False
        remaining = self.config.verify_frames - self._burst.done
        return self._burst.agree + remaining - 1 < self.config.verify_min_agree

    def next_interval(self, normal_interval_s: float) -> float:
        """Seconds until the next frame should be analysed: burst frames come faster."""
        return self.config.verify_interval_s if self.in_burst else normal_interval_s

    def alert_active(self) -> bool:
        """An alert was raised and nobody acknowledged it yet."""
        return self.last_alert is not None and not self.acknowledged

    # -- inputs -------------------------------------------------------------------------------
    def observe(self, is_failure: bool, score: float, now: float) -> Transition | None:
        """Record one analysed frame; returns the transition it caused, if any."""
        if self.state in (CameraState.PAUSED,):
            return None
        previous = self.state
        if self.state in (CameraState.STARTING, CameraState.CAMERA_OFFLINE):
            self.state = self._resting_state(now)
        self.votes.append(is_failure)
        result = self._step(is_failure, score, now)
        if result is None and self.state != previous:
            return Transition(previous, self.state)
        if result is not None:
            result.previous = previous
        return result

    def _step(self, is_failure: bool, score: float, now: float) -> Transition | None:
        if self.state == CameraState.WATCHING:
            if is_failure:
                self.state = CameraState.SUSPECT
                self._burst = _Burst()
                if self.config.verify_frames == 0:
                    return self._try_confirm(score, now, burst_needed=False)
            return None
        if self.state == CameraState.SUSPECT:
            assert self._burst is not None
            self._burst.done += 1
            self._burst.agree += int(is_failure)
            return self._try_confirm(score, now, burst_needed=True)
        if self.state == CameraState.FAILURE:
            if not self.acknowledged and self._cooldown_over(now) and self.failure_votes >= self.config.votes:
                return self._raise(score, now, repeat=True)
            if len(self.votes) == self.votes.maxlen and self.failure_votes == 0:
                self.state = CameraState.COOLDOWN
                self.acknowledged = True
            return None
        if self.state == CameraState.COOLDOWN and self._cooldown_over(now):
            self.state = CameraState.WATCHING
            self.votes.clear()
        return None

    def _try_confirm(self, score: float, now: float, burst_needed: bool) -> Transition | None:
        burst = self._burst or _Burst()
        need = self.config.verify_min_agree if burst_needed else 0
        if burst.agree >= need and self.failure_votes >= self.config.votes:
            return self._raise(score, now, repeat=False)
        remaining = self.config.verify_frames - burst.done
        if burst.agree + remaining < need or remaining <= 0:
            self._burst = None
            self.state = CameraState.WATCHING
        return None

    def _raise(self, score: float, now: float, repeat: bool) -> Transition:
        burst = self._burst or _Burst()
        previous_alert = self.last_alert
        alert = Alert(
            id=previous_alert.id if repeat and previous_alert else uuid.uuid4().hex[:12],
            camera=self.camera,
            score=score,
            votes=self.failure_votes,
            window=len(self.votes),
            burst_agree=burst.agree,
            burst_frames=burst.done,
            repeat=(previous_alert.repeat + 1) if repeat and previous_alert else 0,
        )
        self._burst = None
        self.last_alert, self.last_alert_at, self.acknowledged = alert, now, False
        previous = self.state
        self.state = CameraState.FAILURE
        return Transition(previous, self.state, alert)

    def _cooldown_over(self, now: float) -> bool:
        return self.last_alert_at is None or now - self.last_alert_at >= self.config.cooldown_s

    def _resting_state(self, now: float) -> CameraState:
        if self.alert_active():
            return CameraState.FAILURE
        if not self._cooldown_over(now):
            return CameraState.COOLDOWN
        return CameraState.WATCHING

    def _move(self, state: CameraState) -> Transition | None:
        if state == self.state:
            return None
        previous, self.state = self.state, state
        return Transition(previous, state)

    def acknowledge(self, now: float) -> Transition | None:
        """A person saw the alert: silence it and wait out the cooldown."""
        self.acknowledged = True
        if self.state == CameraState.FAILURE:
            return self._move(CameraState.COOLDOWN if not self._cooldown_over(now) else CameraState.WATCHING)
        return None

    def end_print(self) -> Transition | None:
        """The print the alert was about has ended: its alert is closed (answered or not) and neither it
        nor its cooldown carries over, so the next print starts ``watching`` with an empty window."""
        self.acknowledged = True
        self.last_alert_at = None
        self._burst = None
        self.votes.clear()
        if self.state in (CameraState.FAILURE, CameraState.COOLDOWN, CameraState.SUSPECT):
            return self._move(CameraState.WATCHING)
        return None

    def pause(self) -> Transition | None:
        self._burst = None
        return self._move(CameraState.PAUSED)

    def resume(self, now: float) -> Transition | None:
        if self.state != CameraState.PAUSED:
            return None
        self.votes.clear()
        return self._move(self._resting_state(now))

    def camera_lost(self) -> Transition | None:
        if self.state == CameraState.PAUSED:
            return None
        self._burst = None
        return self._move(CameraState.CAMERA_OFFLINE)

    def camera_back(self, now: float) -> Transition | None:
        if self.state != CameraState.CAMERA_OFFLINE:
            return None
        return self._move(self._resting_state(now))
