"""Pausing the printer: OctoPrint and Moonraker stand-ins on 127.0.0.1, driven by the real clients."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from appliance.actions.dispatcher import EventHub
from appliance.actions.printer_control import PrinterControl
from appliance.actions.printers import build_printer
from appliance.config.model import LayerwatchConfig
from appliance.service.commands import Command, CommandKind, CommandQueue
from tests.alert_scenario import synthetic_alert
from tests.http_peers import HttpPeer, serving

API_KEY = "0ct0pr1nt-ap1-k3y-ABCDEF"


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    with serving((204, None, {})) as peer:
        yield peer


def _control(peer: HttpPeer, countdown_s: float, **printer: Any):
    tree = {"alarm": {"countdown_s": countdown_s},
            "printer": {"url": peer.url, "api_key": API_KEY, "poll_interval_s": 0, "retry_backoff_s": 0.1,
                        **printer}}  # fmt: skip
    config = LayerwatchConfig.model_validate(tree)
    assert config.printer is not None
    events: list[tuple[str, dict]] = []
    hub = EventHub()
    hub.listen(lambda kind, payload: events.append((kind, payload)))
    queue = CommandQueue()
    control = PrinterControl(config.printer, countdown_s, build_printer(config.printer), queue, hub)
    control.start()
    return control, events, queue


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_octoprint_pause_after_the_countdown(http_peer: HttpPeer):
    control, events, _ = _control(http_peer, 0.6, type="octoprint")
    raised = time.monotonic()
    control.on_alert("printer", *synthetic_alert())
    [post] = http_peer.wait_posts(1, "/api/job")
    assert post.at - raised >= 0.59  # not before the countdown ran out
    assert post.json() == {"command": "pause", "action": "pause"}
    assert post.headers["X-Api-Key"] == API_KEY
    _wait(lambda: any(k == "printer_action" for k, _ in events))
    control.stop()
    outcome = next(p for k, p in events if k == "printer_action")
    assert outcome["outcome"] == "done" and outcome["action"] == "pause" and outcome["attempts"] == 1
    assert events[0][0] == "printer_countdown"


def test_acknowledge_cancels_the_countdown(http_peer: HttpPeer):
    control, events, _ = _control(http_peer, 0.8, type="octoprint")
    alert, result, jpeg = synthetic_alert()
    control.on_alert("printer", alert, result, jpeg)
    time.sleep(0.3)
    control.on_command(Command(CommandKind.ACKNOWLEDGE, camera="printer", origin="mqtt"))
    control.on_alert("printer", *synthetic_alert(alert_id=alert.id, repeat=1))  # a reminder: no new countdown
    time.sleep(1.2)
    control.stop()
    assert http_peer.posts() == []
    assert (
        "printer_countdown_cancelled",
        {"camera": "printer", "alert": alert.id, "action": "pause"},
    ) in events


def test_moonraker_cancel_is_retried_after_a_server_error(http_peer: HttpPeer):
    http_peer.script = [(500, {"error": {"message": "Klippy busy"}}, {})]
    http_peer.default = (200, {"result": "ok"}, {})
    control, events, _ = _control(http_peer, 0, type="moonraker", action="cancel")
    control.on_alert("printer", *synthetic_alert())
    posts = http_peer.wait_posts(2, "/printer/print/cancel")
    _wait(lambda: any(k == "printer_action" for k, _ in events))
    control.stop()
    assert len(posts) == 2 and posts[1].at - posts[0].at >= 0.09
    outcome = next(p for k, p in events if k == "printer_action")
    assert outcome["outcome"] == "done" and outcome["attempts"] == 2


def test_refusal_is_not_retried_and_pause_print_command_acts_at_once(http_peer: HttpPeer):
    http_peer.script = [(409, {"error": "Printer is not printing"}, {})]
    control, events, _ = _control(http_peer, 60, type="octoprint")
    control.on_command(Command(CommandKind.PAUSE_PRINT, origin="mqtt"))
    http_peer.wait_posts(1, "/api/job")
    _wait(lambda: any(k == "printer_action" for k, _ in events))
    time.sleep(0.3)
    control.stop()
    assert len(http_peer.posts()) == 1
    assert next(p for k, p in events if k == "printer_action")["outcome"] == "refused"


def test_watches_only_while_printing_and_publishes_progress(http_peer: HttpPeer):
    states = {"value": "standby"}

    def moonraker(request):
        if request.path == "/printer/objects/query":
            assert set(request.query) == {"print_stats", "virtual_sdcard"}
            status = {"print_stats": {"state": states["value"], "filename": "benchy.gcode"},
                      "virtual_sdcard": {"progress": 0.425}}  # fmt: skip
            return 200, {"result": {"eventtime": 1.0, "status": status}}, {}
        return None

    http_peer.responder = moonraker
    control, events, queue = _control(http_peer, 60, type="moonraker", poll_interval_s=0.1, camera="printer")
    _wait(lambda: any(k == "printer_state" for k, _ in events))
    time.sleep(0.3)
    [pause] = queue.drain()  # idle printer: monitoring paused once, not on every poll
    assert (pause.kind, pause.camera, pause.origin) == (CommandKind.PAUSE, "printer", "printer")
    states["value"] = "printing"
    _wait(lambda: any(p.get("state") == "printing" for k, p in events if k == "printer_state"))
    time.sleep(0.2)
    control.stop()
    assert [c.kind for c in queue.drain()] == [CommandKind.RESUME]
    last = [p for k, p in events if k == "printer_state"][-1]
    assert last == {"camera": "printer", "state": "printing", "progress": 42.5, "file": "benchy.gcode",
                    "active": True}  # fmt: skip


@pytest.mark.parametrize(
    ("progress", "end_state", "final", "outcome", "certain"),
    [
        (1.0, "Operational", None, "completed", True),
        # issue 32 defect 6: the last Printing poll at 97 %, then Operational with completion 100
        (0.97, "Operational", 100.0, "completed", True),
        (0.4, "Operational", None, "cancelled", False),  # back to idle below 99 %: not certain
        (0.4, "Cancelling", 40.0, "cancelled", True),  # the printer said so
    ],
)
def test_a_job_that_ends_is_reported_completed_or_cancelled(
    http_peer: HttpPeer, progress: float, end_state: str, final: float | None, outcome: str, certain: bool
) -> None:
    """OctoPrint peer: Printing -> its end state. The printer's own end state and final completion decide;
    only a certain end may teach the camera (its late frames normal, or the alert's frames failures)."""
    states = {"value": "Printing"}

    def octoprint(request):
        if request.path == "/api/job":
            done = progress * 100 if states["value"] == "Printing" else final
            return 200, {"state": states["value"], "progress": {"completion": done},
                         "job": {"file": {"name": "benchy.gcode"}}}, {}  # fmt: skip
        return None

    http_peer.responder = octoprint
    control, events, queue = _control(http_peer, 60, type="octoprint", poll_interval_s=0.05, camera="printer",
                                      watch_only_while_printing=False)  # fmt: skip
    _wait(lambda: any(p.get("state") == "printing" for k, p in events if k == "printer_state"))
    states["value"] = end_state
    _wait(lambda: any(k == "printer_job_end" for k, _ in events))
    control.stop()
    [finished] = [c for c in queue.drain() if c.kind is CommandKind.PRINT_FINISHED]
    expected = {"completed": outcome == "completed", "outcome": outcome, "certain": certain}
    assert (finished.camera, finished.value) == ("printer", expected)
