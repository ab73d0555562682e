"""Defect 5 of issue 14: an outbox entry that parses but has wrong types is set aside, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.actions.dispatcher import Notification
from appliance.actions.outbox import Outbox


@pytest.mark.parametrize("bad", [{"created": "yesterday"}, {"fields": None}, {"key": 5}, {"created": True}])
def test_wrong_types_are_set_aside_and_the_next_entry_loads(tmp_path: Path, bad: dict[str, object]) -> None:
    outbox = Outbox(tmp_path / "mqtt")
    outbox.put(Notification(key="first", kind="alert", camera="printer", title="t", description="d"))
    outbox.put(Notification(key="second", kind="alert", camera="printer", title="t", description="d"))
    first = outbox.pending()[0]
    first.write_text(json.dumps({**json.loads(first.read_text()), **bad}))
    assert outbox.load(first) is None
    assert (tmp_path / "mqtt" / "rejected" / first.name).exists()
    loaded = outbox.load(outbox.pending()[0])
    assert loaded is not None and loaded.key == "second"


def test_an_unexpected_error_in_the_delivery_loop_does_not_end_it(tmp_path: Path) -> None:
    """Whatever goes wrong in one turn of the loop (here: listing the outbox fails twice), the thread logs it
    and goes on: later alerts are still delivered (issue 14: a dead outbox thread looked healthy)."""
    import time

    from appliance.actions.outbox import OutboxWorker

    outbox = Outbox(tmp_path / "mqtt")
    real_entries = outbox.entries
    failures = iter([RuntimeError("boom"), RuntimeError("boom again")])

    def flaky_entries() -> list:  # type: ignore[type-arg]
        error = next(failures, None)
        if error is not None:
            raise error
        return real_entries()

    outbox.entries = flaky_entries  # type: ignore[method-assign]
    delivered: list[str] = []
    worker = OutboxWorker("mqtt", outbox, lambda n: delivered.append(n.key))
    worker.start()
    try:
        outbox.put(Notification(key="after", kind="alert", camera="printer", title="t", description="d"))
        worker.wake()
        deadline = time.monotonic() + 10
        while not delivered and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert delivered == ["after"] and worker.failures == 2
