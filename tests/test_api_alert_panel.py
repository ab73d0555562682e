"""The console's alert panel and history without a server (issue 32 defects 1, 2, 4): what the panel says
will happen and what did, from the events the other sinks publish; a telemetry alert keeps its signal,
value and limit and has no picture; an alert stays open until it is answered or its print ends."""

from __future__ import annotations

from pathlib import Path

from appliance.actions.dispatcher import event_hub
from appliance.api.sink import ApiSink
from appliance.config.model import LayerwatchConfig
from appliance.decision import Alert
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.wiring import ServiceContext
from tests.alert_scenario import synthetic_alert


def _sink(tmp_path: Path, extra: dict | None = None) -> tuple[ApiSink, ServiceContext]:
    config = LayerwatchConfig.model_validate({
        "cameras": [{"name": "printer", "source": {"type": "replay", "path": str(tmp_path)}}],
        "service": {"state_dir": str(tmp_path / "state")}, "alarm": {"countdown_s": 60}, **(extra or {}),
    })  # fmt: skip
    context = ServiceContext(CommandQueue(), lambda _: {}, ["printer"], tmp_path / "state")
    return ApiSink(config, context), context


def test_the_panel_says_nothing_happens_without_a_printer_and_stays_open(tmp_path: Path):
    sink, _ = _sink(tmp_path)
    alert, result, jpeg = synthetic_alert()
    sink.on_alert("printer", alert, result, jpeg)
    view = sink.countdown("printer")
    assert view is not None and view["plan"] == {"kind": "none", "action": None, "phase": "none"}
    assert not hasattr(sink, "on_tick")  # nothing expires it: it waits for an answer or the print's end
    sink.on_command(Command(CommandKind.ACKNOWLEDGE, "printer", origin="api"))
    assert sink.countdown("printer") is None
    assert sink.alerts.list()[0]["closed"] == "acknowledged"


def test_the_panel_says_what_the_printer_will_do_and_what_it_did(tmp_path: Path):
    sink, context = _sink(tmp_path, {"printer": {"type": "octoprint", "url": "http://127.0.0.1:9"}})
    hub = event_hub(context)
    alert, result, jpeg = synthetic_alert()
    hub.emit(
        "printer_countdown", {"camera": "printer", "alert": alert.id, "action": "pause", "countdown_s": 60}
    )
    sink.on_alert("printer", alert, result, jpeg)
    plan = sink.countdown("printer")["plan"]  # type: ignore[index]
    assert plan["kind"] == "printer" and plan["phase"] == "counting" and 0 < plan["remaining_s"] <= 60
    hub.emit("printer_action", {"camera": "printer", "action": "pause", "outcome": "done", "reason": "r"})
    assert sink.countdown("printer")["plan"]["phase"] == "done"  # type: ignore[index]
    hub.emit("printer_job_end", {"camera": "printer", "completed": False, "certain": False})
    assert sink.countdown("printer") is None
    assert sink.alerts.list()[0]["closed"] == "print_ended_unanswered"


def test_a_telemetry_alert_keeps_signal_value_and_limit_and_has_no_picture(tmp_path: Path):
    sink, context = _sink(tmp_path)
    _, result, jpeg = synthetic_alert()
    alert = Alert("7e1e0000beef", "printer", 1.0, 0, 0, 0, 0, cause="nozzle_temp 262 out of range [180, 250]")
    anomaly = {"alert": alert.id, "camera": "printer", "kind": "out_of_range", "signal": "nozzle_temp",
               "value": 262.0, "target": None, "limit": "[180, 250]"}  # fmt: skip
    event_hub(context).emit("telemetry_alert", anomaly)
    sink.on_alert("printer", alert, result, jpeg)
    [entry] = sink.alerts.list()
    assert entry["image"] is None and entry["score"] is None
    assert entry["telemetry"]["signal"] == "nozzle_temp" and entry["telemetry"]["limit"] == "[180, 250]"
    assert sink.alerts.image_path(alert.id) is None
    assert sink.countdown("printer")["telemetry"]["value"] == 262.0  # type: ignore[index]


def test_the_strip_keeps_older_unsure_frames_and_lists_questions_first(tmp_path: Path):
    """The strip of recent frames: the newest 24, older unsure ones kept apart (the camera's questions are
    among them), questions first; an answer and its withdrawal show on the frame."""
    import dataclasses

    from appliance.api.recent_frames import KEPT, RecentFrames
    from appliance.detector import Verdict

    frames = RecentFrames(["printer"])
    _, result, _ = synthetic_alert()
    features = type("F", (), {})()
    for n in range(KEPT * 2):
        verdict = Verdict.UNCERTAIN if n == 3 else Verdict.OK
        detection = dataclasses.replace(result.detection, verdict=verdict, features=features)
        frames.add(dataclasses.replace(result, detection=detection, frame_id=f"run-{n}"))
    listed = frames.list("printer", questions=["run-3"])
    assert len(listed) == KEPT + 1 and listed[0]["frame_id"] == "run-3" and listed[0]["question"]
    assert listed[0]["unsure"] and listed[1]["frame_id"] == f"run-{KEPT * 2 - 1}"
    assert frames.thumbnail("printer", "run-3")[:2] == b"\xff\xd8"  # type: ignore[index]
    answer = {"camera": "printer", "frame": "run-3", "label": "ok", "learned": 1, "answer_ids": ["a1"]}
    assert frames.answered(answer)
    assert frames.list("printer", [])[-1]["answer_ids"] == ["a1"]
    assert frames.withdrawn({"camera": "printer", "key": "a1"})
    assert frames.list("printer", [])[-1]["answer"] is None
