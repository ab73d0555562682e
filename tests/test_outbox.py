"""The on-disk outbox and the dispatcher's policies, without any network."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from appliance.actions.dispatcher import (
    AlertDispatcher,
    ChannelPolicy,
    Notification,
    alert_notification,
    reason_words,
)
from appliance.actions.outbox import Outbox, OutboxWorker
from appliance.errors import DeliveryError, DeliveryRejectedError
from appliance.service.commands import Command, CommandKind, CommandQueue
from tests.alert_scenario import synthetic_alert


def _note(key: str = "abc-0", image: bytes | None = b"\xff\xd8jpeg") -> Notification:
    return Notification(key=key, kind="alert", camera="printer", title="t", description="d", image=image)


def test_put_is_durable_deduplicated_and_survives_a_new_process(tmp_path: Path):
    box = Outbox(tmp_path / "mqtt")
    assert box.put(_note()) is True
    assert box.put(_note()) is False  # same alert and repeat: stored once
    box.put(_note("def-0", image=None))
    assert not list((tmp_path / "mqtt").glob(".*.tmp"))
    again = Outbox(tmp_path / "mqtt")  # what a restarted service sees
    pending = again.pending()
    assert [p.name.split("-", 1)[1] for p in pending] == ["abc-0.json", "def-0.json"]
    first = again.load(pending[0])
    assert first is not None and first.image == b"\xff\xd8jpeg" and first.title == "t"
    (tmp_path / "mqtt" / "0000-broken.json").write_text("{not json")
    assert again.load(again.pending()[0]) is None  # set aside, not crashing the worker
    assert (tmp_path / "mqtt" / "rejected" / "0000-broken.json").exists()


def test_worker_honours_retry_after_then_delivers_once(tmp_path: Path):
    calls: list[float] = []

    def deliver(n: Notification) -> None:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise DeliveryError("busy", retry_after_s=0.3)

    box = Outbox(tmp_path / "x")
    worker = OutboxWorker("x", box, deliver, backoff_s=5.0)
    box.put(_note())
    worker.start()
    deadline = time.monotonic() + 5
    while box.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    assert not box.pending() and len(calls) == 3 and worker.delivered == 1
    assert calls[1] - calls[0] >= 0.29 and calls[2] - calls[1] >= 0.29  # the peer's wait, not 5 s backoff


def test_refused_message_is_set_aside_and_the_next_one_goes(tmp_path: Path):
    delivered: list[str] = []

    def deliver(n: Notification) -> None:
        if n.key == "bad-0":
            raise DeliveryRejectedError("HTTP 400")
        delivered.append(n.key)

    box = Outbox(tmp_path / "x")
    box.put(_note("bad-0"))
    box.put(_note("good-0"))
    worker = OutboxWorker("x", box, deliver)
    worker.start()
    deadline = time.monotonic() + 5
    while box.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    assert delivered == ["good-0"]
    assert len(list((tmp_path / "x" / "rejected").glob("*bad-0.json"))) == 1


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.published: list[Notification] = []

    def publish(self, notification: Notification) -> None:
        self.published.append(notification)

    def subscribe(self, handler) -> None:
        self.handler = handler

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_rate_limit_reminders_and_acknowledged_alerts_stay_quiet():
    limited, quiet_repeats = Recorder(), Recorder()
    queue = CommandQueue()
    dispatcher = AlertDispatcher(
        [(limited, ChannelPolicy(max_per_hour=2)), (quiet_repeats, ChannelPolicy(send_repeats=False))], queue
    )
    dispatcher.start()
    for _ in range(3):
        dispatcher.on_alert("printer", *synthetic_alert())
    assert len(limited.published) == 3  # over the limit, but an alert is never dropped (issue 14)
    assert len(quiet_repeats.published) == 3
    alert, result, jpeg = synthetic_alert(alert_id="feedfeed0001")
    dispatcher.on_alert("printer", alert, result, jpeg)
    dispatcher.on_command(Command(CommandKind.ACKNOWLEDGE, origin="test"))
    reminder, result, jpeg = synthetic_alert(alert_id="feedfeed0001", repeat=1)
    dispatcher.on_alert("printer", reminder, result, jpeg)
    assert not any(n.key == "feedfeed0001-1" for n in limited.published + quiet_repeats.published)
    # commands a channel receives reach the service's queue
    limited.handler(Command(CommandKind.PAUSE, origin="mqtt"))
    assert [c.kind for c in queue.drain()] == [CommandKind.PAUSE]
    # the test alarm sends a test message through every channel
    dispatcher.on_command(Command(CommandKind.TEST_ALARM, origin="mqtt"))
    assert quiet_repeats.published[-1].kind == "test"


def test_alert_notification_carries_id_score_and_image():
    alert, result, jpeg = synthetic_alert(alert_id="a1b2c3d4e5f6")
    n = alert_notification("printer", alert, result, jpeg)
    assert n.key == "a1b2c3d4e5f6-0" and n.fields["score"] == 0.93 and n.fields["state"] == "failure"
    assert n.image == jpeg and "verification frames" in n.description
    assert "reason" not in n.fields  # no learner reason on this frame


def test_alert_notification_says_the_learner_reason_in_words_and_carries_it():
    alert, result, jpeg = synthetic_alert(alert_id="a1b2c3d4e5f6")
    failure = {"answer_id": "x1", "source": "user", "frame_id": "f1", "time": 1.7e9, "similarity": 0.912}
    normal = {"answer_id": "c1", "source": "calibration", "frame_id": None, "time": 1.7e9, "similarity": 0.5}
    reason = {"prior_logit": -1.234, "learner": "fitted", "nearest_failure": failure, "nearest_ok": normal}
    n = alert_notification("printer", alert, dataclasses.replace(result, reason=reason), jpeg)
    assert n.fields["reason"] == reason  # MQTT P/<camera>/event carries the fields as they are
    assert "It looks most like the user's answer of " in n.description
    assert (
        "(similarity 0.91) labelled failure; its closest normal frame is the calibration frame"
        in n.description
    )
    assert n.description.endswith("The generic model's own logit: -1.23.")
    assert (
        reason_words({"prior_logit": 0.5})
        == "The camera has no labelled frames yet. The generic model's own logit: 0.50."
    )
