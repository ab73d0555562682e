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
