"""Issue 33 item 5: commands get a bounded share of each turn of the loop and a bounded queue."""

from __future__ import annotations

import logging

import pytest

from appliance.service.commands import Command, CommandKind, CommandQueue


def test_a_flood_is_bounded_counted_and_handed_out_in_shares(caplog: pytest.LogCaptureFixture) -> None:
    queue = CommandQueue(max_queued=10, per_drain=4)
    accepted = [queue.submit(Command(CommandKind.ACKNOWLEDGE, origin="mqtt")) for _ in range(25)]
    assert accepted.count(True) == 10 and queue.dropped == 15
    assert queue.submit(Command(CommandKind.ACKNOWLEDGE, origin="button"))  # never dropped
    assert len(queue) == 11
    shares = []
    with caplog.at_level(logging.WARNING):
        for _ in range(10):  # bounded: 11 commands in shares of 4
            share = queue.drain()
            if not share:
                break
            shares.append(len(share))
    assert shares == [4, 4, 3]
    assert "commands: 15 dropped so far" in caplog.text  # the final count, once the queue is empty
    assert queue.drain(limit=100) == []


def test_the_loop_reads_commands_within_a_time_budget() -> None:
    """``stream`` stops handing out commands once the turn's budget is spent on them."""
    import time

    queue = CommandQueue(per_drain=100)
    for _ in range(50):
        queue.submit(Command(CommandKind.ACKNOWLEDGE, origin="mqtt"))
    handled = 0
    started = time.monotonic()
    for _command in queue.stream(budget_s=0.05):
        time.sleep(0.01)  # a slow command (an fsynced write on a busy card)
        handled += 1
    took = time.monotonic() - started
    assert 4 <= handled <= 7 and took < 0.1, (handled, took)
    assert len(queue) == 50 - handled  # the rest waits for the next turn
    assert len(list(queue.stream(budget_s=10))) == 50 - handled
