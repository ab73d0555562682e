"""The history sink driven by the printer's events as the poll thread sends them, with a real Discord
channel (a local HTTP peer): a job Layerwatch paused ends as ``paused_by_layerwatch`` with its alert in
the record and its timelapse attached; a printer error is told and ends the next job as ``failed``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from appliance.actions import notifiers
from appliance.actions.dispatcher import event_hub
from appliance.config.model import LayerwatchConfig
from appliance.history.sink import HistorySink
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext
from tests.alert_scenario import synthetic_alert
from tests.http_peers import serving

HOOK = "/api/webhooks/1/h1st0ry-hook"


def test_paused_by_layerwatch_then_a_printer_error(tmp_path: Path):
    with serving() as discord:
        tree = {
            "printer": {"type": "octoprint", "url": "http://127.0.0.1:9", "poll_interval_s": 5},
            "notify": {"discord": {"webhook_url": discord.url + HOOK, "max_alerts_per_hour": 1}},
            "history": {"enabled": True, "images_dir": str(tmp_path / "images"), "frame_interval_s": 0,
                        "min_free_mb": 1, "timelapse": {"target_duration_s": 1}},
        }  # fmt: skip
        config = LayerwatchConfig.model_validate(tree)
        context = ServiceContext(CommandQueue(), lambda camera: {}, ["printer"], tmp_path / "state")
        hub = event_hub(context)
        [dispatcher] = notifiers.create_sinks(config, context)
        sink = HistorySink(config, context, hub)
        old_frame = tmp_path / "images" / "printer" / "20260101T000000_old" / "20260101T000000_000000_old.jpg"
        old_evidence = tmp_path / "state" / "cameras" / "printer" / "alerts" / "0123456789ab-0.jpg"
        for path, days in ((old_frame, 8), (old_evidence, 31)):
            path.parent.mkdir(parents=True)
            path.write_bytes(b"\xff\xd8old")
            os.utime(path, (time.time() - days * 86400, time.time() - days * 86400))
        dispatcher.start()  # type: ignore[attr-defined]
        sink.start()
        sink.on_tick(time.monotonic())  # the first tick sweeps: frames kept 7 days, evidence 30
        sink.slow.join()
        assert not old_frame.exists() and not old_frame.parent.exists() and not old_evidence.exists()
        alert, result, jpeg = synthetic_alert()

        hub.emit("printer_state", {"state": "printing", "progress": 10.0, "file": "a.gcode", "active": True})
        for _ in range(6):
            sink.on_frame(result)
            time.sleep(0.01)
        sink.on_alert("printer", alert, result, jpeg)
        hub.emit("printer_action", {"action": "pause", "outcome": "done", "camera": None})
        hub.emit("printer_state", {"state": "paused", "progress": 12.0, "file": "a.gcode", "active": True})
        hub.emit("printer_state", {"state": "operational", "progress": 12.0, "file": None, "active": False})
        sink.slow.join()
        hub.emit("printer_state", {"state": "printing", "progress": 0.0, "file": "b.gcode", "active": True})
        hub.emit("printer_state", {"state": "error", "progress": 3.0, "file": "b.gcode", "active": False})
        posts = discord.wait_posts(10, timeout=20)
        sink.stop()
        dispatcher.stop()  # type: ignore[attr-defined]

    titles = [json.loads(p.field("payload_json"))["embeds"][0]["title"] for p in posts]
    assert titles == [
        "Print started: a.gcode", "Printer state: paused", "Printer state: operational",
        "Print paused by layerwatch: a.gcode", "Timelapse: a.gcode", "Printer state: printing",
        "Print started: b.gcode", "Printer state: error", "Printer error: error", "Print failed: b.gcode",
    ]  # fmt: skip
    video = posts[4].parts["files[0]"]
    assert video.content_type == "video/mp4" and video.data[4:8] == b"ftyp"
    assert posts[3].parts["files[0]"].content_type == "image/jpeg"  # the final photo
    first, second = json.loads((tmp_path / "state" / "history" / "jobs.json").read_text())
    assert first["outcome"] == "paused_by_layerwatch" and first["paused_by_layerwatch"] is True
    assert first["alerts"] == [alert.id] and first["frames"] == {"printer": 6}
    assert Path(first["timelapses"]["printer"]).is_file()
    assert second["outcome"] == "failed" and second["name"] == "b.gcode" and second["timelapses"] == {}


def test_switched_off_messages_stay_off(tmp_path: Path):
    with serving() as discord:
        tree = {
            "printer": {"type": "octoprint", "url": "http://127.0.0.1:9", "poll_interval_s": 5},
            "notify": {"discord": {"webhook_url": discord.url + HOOK}},
            "history": {"enabled": True, "images_dir": str(tmp_path / "images"), "min_free_mb": 1,
                        "timelapse": {"enabled": False},
                        "notify": {"job_start": False, "state_changes": False, "progress": False,
                                   "final_photo": True, "errors": False}},
        }  # fmt: skip
        config = LayerwatchConfig.model_validate(tree)
        context = ServiceContext(CommandQueue(), lambda camera: {}, ["printer"], tmp_path / "state")
        hub = event_hub(context)
        [dispatcher] = notifiers.create_sinks(config, context)
        sink = HistorySink(config, context, hub)
        dispatcher.start()  # type: ignore[attr-defined]
        sink.start()
        for progress in (0.0, 30.0, 60.0, 100.0):
            hub.emit("printer_state", {"state": "printing", "progress": progress, "file": "c.gcode"})
        hub.emit("printer_state", {"state": "error", "progress": 100.0, "file": None})
        [post] = discord.wait_posts(1, timeout=10)
        time.sleep(0.5)
        sink.stop()
        dispatcher.stop()  # type: ignore[attr-defined]
        assert len(discord.posts()) == 1
    assert json.loads(post.field("payload_json"))["embeds"][0]["title"] == "Print completed: c.gcode"
