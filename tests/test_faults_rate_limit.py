"""Defect 2 of issue 14: test alarms must not use up the alert rate limit; a real alert is never dropped."""

from __future__ import annotations

from appliance.actions.dispatcher import ChannelPolicy, Notification
from appliance.actions.dispatcher import test_notification as make_test_notification


def _alert(n: int) -> Notification:
    return Notification(key=f"a{n}-0", kind="alert", camera="printer", title="t", description="d",
                        fields={"id": f"a{n}", "repeat": 0})  # fmt: skip


def test_test_alarms_do_not_use_up_the_alert_budget() -> None:
    policy = ChannelPolicy(max_per_hour=6)
    for i in range(10):
        policy.allows(make_test_notification(None), float(i))
    assert policy.allows(_alert(1), 20.0) is None


def test_alerts_over_the_limit_are_still_sent() -> None:
    policy = ChannelPolicy(max_per_hour=2)
    assert [policy.allows(_alert(i), float(i)) for i in range(5)] == [None] * 5
    assert policy.allows(make_test_notification(None), 6.0) is None
    assert policy.allows(make_test_notification(None), 7.0) is None
    assert policy.allows(make_test_notification(None), 8.0) is not None  # tests are still limited
