"""The notifier interface and the dispatcher between the analysis loop and the channels.

Every outbound channel (MQTT events, Discord, Telegram) is a :class:`Notifier`: ``publish`` queues a
:class:`Notification` in the channel's on-disk outbox and returns at once, ``subscribe`` registers
a handler for commands the channel receives (only MQTT has any), ``stop`` ends its threads.

:class:`AlertDispatcher` is the :class:`~appliance.service.pipeline.ActionSink` in front of a set of
notifiers: it turns each alert into a notification, applies each channel's policy (rate limit,
reminders, acknowledged alerts stay quiet) and routes incoming commands into the service's
:class:`~appliance.service.commands.CommandQueue`. A slow or dead channel costs the loop nothing:
delivery happens on each notifier's own thread.

:func:`event_hub` is a small in-process hook for things that are not alerts but should be
published (the printer's state and the outcome of a printer action); the MQTT sink listens to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from appliance.decision import Alert, Transition
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.pipeline import FrameResult

if TYPE_CHECKING:
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)

HOUR_S = 3600.0


def _wall_clock() -> float:
    return time.time()


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Notification:
    """One message for the channels. ``key`` is unique per alert and reminder (``<id>-<repeat>``)."""

    key: str
    kind: str  # "alert", "test" or "job" (job messages of appliance.history: never rate limited)
    camera: str | None
    title: str
    description: str
    time: str = field(default_factory=iso_now)
    created: float = field(default_factory=_wall_clock)  # wall clock, seconds: survives restarts
    fields: dict[str, Any] = field(default_factory=dict)  # id, repeat, score, state, votes, cloud verdict
    image: bytes | None = None  # the evidence JPEG

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("image")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], image: bytes | None) -> Notification:
        return cls(**{**data, "image": image})


def alert_notification(camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> Notification:
    """The notification for a confirmed failure (or a reminder of one)."""
    reminder = f" (reminder {alert.repeat})" if alert.repeat else ""
    if alert.cause is not None:  # a printer telemetry anomaly: its words, not the camera's votes
        return Notification(
            key=f"{alert.id}-{alert.repeat}", kind="alert", camera=camera,
            title=f"{camera}: printer anomaly{reminder}", description=alert.cause,
            fields={"id": alert.id, "repeat": alert.repeat, "score": round(alert.score, 4),
                    "state": result.state.value, "cause": alert.cause},
            image=evidence_jpeg,
        )  # fmt: skip
    description = (
        f"Print failure confirmed by {alert.burst_agree} of {alert.burst_frames} verification frames "
        f"and {alert.votes} of the last {alert.window} frames."
    )
    # the cloud judge (another module) may attach its verdict and words to the detection
    cloud = None if result.cloud is None else ("failure" if result.cloud.get("failure") else "ok")
    cloud_words = None if result.cloud is None else result.cloud.get("description")
    if isinstance(cloud_words, str) and cloud_words:
        description = f"{description} Cloud: {cloud_words}"
    if result.reason is not None:
        description = f"{description} {reason_words(result.reason)}"
    return Notification(
        key=f"{alert.id}-{alert.repeat}",
        kind="alert",
        camera=camera,
        title=f"{camera}: print failure{reminder}",
        description=description,
        fields={
            "id": alert.id,
            "repeat": alert.repeat,
            "score": round(alert.score, 4),
            "state": result.state.value,
            "votes": alert.votes,
            "window": alert.window,
            "cloud_verdict": cloud,
            **({"reason": result.reason} if result.reason is not None else {}),
        },
        image=evidence_jpeg,
    )


def reason_words(reason: dict[str, Any]) -> str:
    """The camera learner's reason for an alert
    (:meth:`appliance.detector.camera_learner.CameraLearner.reason`) in words, as the console's alert panel
    says it: the labelled frames the alert's frame most resembles
    (an answer's local time, or the calibration), and the generic model's logit."""

    def near(entry: dict[str, Any]) -> str:
        similarity = f"(similarity {float(entry.get('similarity', 0.0)):.2f})"
        if entry.get("source") == "calibration":
            return f"the calibration frame {similarity}"
        when = dt.datetime.fromtimestamp(float(entry.get("time", 0.0))).strftime("%Y-%m-%d %H:%M")
        return f"the {entry.get('source', 'user')}'s answer of {when} {similarity}"

    parts: list[str] = []
    if isinstance(failure := reason.get("nearest_failure"), dict):
        parts.append(f"It looks most like {near(failure)} labelled failure")
    if isinstance(normal := reason.get("nearest_ok"), dict):
        lead = "; its closest normal frame is " if parts else "Its closest normal frame is "
        parts.append(lead + near(normal))
    if not parts:
        parts.append("The camera has no labelled frames yet")
    prior = reason.get("prior_logit")
    tail = f" The generic model's own logit: {float(prior):.2f}." if isinstance(prior, int | float) else ""
    return "".join(parts) + "." + tail


def test_notification(camera: str | None) -> Notification:
    return Notification(
        key=f"test-{uuid.uuid4().hex[:12]}",
        kind="test",
        camera=camera,
        title="Layerwatch test alarm",
        description="This is a test of the alert channels; no failure was detected.",
    )


class Notifier(Protocol):
    """One outbound channel. ``publish`` never blocks on the network."""

    name: str

    def publish(self, notification: Notification) -> None: ...

    def subscribe(self, handler: Callable[[Command], None]) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ChannelPolicy:
    """When a channel stays quiet: over its hourly limit, reminders off, or alert acknowledged.

    ``max_per_hour`` limits test alarms and alerts on separate counters, so test alarms can never use
    up the budget of a real failure. A real failure alert is never discarded by the limit: over it,
    the alert still goes out and the excess is logged (a limit must not lose an alert).
    """

    max_per_hour: int = 0  # 0: no limit
    send_repeats: bool = True
    _sent: deque[float] = field(default_factory=deque)
    _tests: deque[float] = field(default_factory=deque)

    def allows(self, notification: Notification, now: float) -> str | None:
        """None if the notification may go out (and counts it), else the reason it may not."""
        if notification.kind == "job":
            return None  # job messages (progress, photos) are paced by their own settings, never counted
        if notification.kind == "alert" and notification.fields.get("repeat") and not self.send_repeats:
            return "reminders are off"
        sent = self._sent if notification.kind == "alert" else self._tests
        while sent and now - sent[0] >= HOUR_S:
            sent.popleft()
        over = bool(self.max_per_hour) and len(sent) >= self.max_per_hour
        if over and notification.kind != "alert":
            return f"rate limit ({self.max_per_hour} per hour)"
        if over:
            logger.warning("alert %s sent over the rate limit (%d per hour): alerts are never dropped",
                           notification.key, self.max_per_hour)  # fmt: skip
        sent.append(now)
        return None


class AlertDispatcher:
    """ActionSink: alerts out to the notifiers, commands in from them."""

    def __init__(self, channels: list[tuple[Notifier, ChannelPolicy]], commands: CommandQueue):
        self.channels = channels
        self.commands = commands
        self._acknowledged: set[str] = set()  # alert ids a person has acknowledged
        self._last_alert: dict[str, str] = {}  # camera -> alert id
        hub_for(commands).listen(self.on_hub_event)

    def on_hub_event(self, kind: str, payload: dict[str, Any]) -> None:
        """``notification`` events (job messages of :mod:`appliance.history`) go out on every channel."""
        notification = payload.get("notification") if kind == "notification" else None
        if isinstance(notification, Notification):
            self.send(notification)

    def start(self) -> None:
        for notifier, _ in self.channels:
            notifier.subscribe(self.route)
            notifier.start()

    def stop(self) -> None:
        for notifier, _ in self.channels:
            try:
                notifier.stop()
            except Exception as exc:  # one channel's trouble must not keep the others running
                logger.warning("%s: stop failed: %s", notifier.name, exc)

    def route(self, command: Command) -> None:
        """A command a channel received: into the service's queue (any thread)."""
        self.commands.submit(command)

    def on_frame(self, result: FrameResult) -> None:
        pass

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        pass

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        self._last_alert[camera] = alert.id
        if alert.repeat and alert.id in self._acknowledged:
            logger.info("alert %s was acknowledged: reminder %d not sent", alert.id, alert.repeat)
            return
        self.send(alert_notification(camera, alert, result, evidence_jpeg))

    def on_command(self, command: Command) -> None:
        if command.kind == CommandKind.ACKNOWLEDGE:
            for camera, alert_id in self._last_alert.items():
                if command.camera in (None, camera):
                    self._acknowledged.add(alert_id)
        elif command.kind == CommandKind.TEST_ALARM:
            self.send(test_notification(command.camera))

    def send(self, notification: Notification) -> None:
        now = time.monotonic()
        for notifier, policy in self.channels:
            reason = policy.allows(notification, now)
            if reason is not None:
                logger.warning(
                    "%s: %s %s not sent: %s", notifier.name, notification.kind, notification.key, reason
                )
                continue
            try:
                notifier.publish(notification)
            except Exception as exc:  # e.g. a full disk: the other channels still get it
                logger.error("%s: cannot queue %s: %s", notifier.name, notification.key, exc)


class EventHub:
    """In-process publish/subscribe for device events (printer state, printer action outcomes)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._lock = threading.Lock()

    def listen(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, payload)
            except Exception as exc:
                logger.warning("event listener failed on %s: %s", kind, exc)


def set_aside_reporter(hub: EventHub, channel: str) -> Callable[[str, str], None]:
    """An outbox's ``on_set_aside``: each entry set aside becomes an ``outbox_entry_set_aside`` device
    event (MQTT ``P/event``, the console's event stream), like the state files set aside at start-up."""

    def report(entry: str, reason: str) -> None:
        hub.emit("outbox_entry_set_aside", {"channel": channel, "entry": entry, "message": reason[:300]})

    return report


_hubs: weakref.WeakKeyDictionary[CommandQueue, EventHub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def event_hub(context: ServiceContext) -> EventHub:
    """The one hub of a running service (keyed by its command queue)."""
    return hub_for(context.commands)


def hub_for(commands: CommandQueue) -> EventHub:
    with _hubs_lock:
        hub = _hubs.get(commands)
        if hub is None:
            hub = _hubs[commands] = EventHub()
        return hub
