"""The alert loop without holes (issue 32), against ``layerwatch run`` with real peers on 127.0.0.1: an
OctoPrint stand-in, mosquitto. Where a browser adds nothing these are API tests; the console's side is
tests/test_api_console_alerts.py.

* defects 5 and 10: answers publish their ids (MQTT ``P/event`` ``answer``, ``GET /api/alerts``),
  ``withdraw/set`` with an alert id takes them back; the printer's temperatures go to their own retained
  topic, never to ``P/event``;
* defects 6 and 8: a print that ends while its alert is open closes the alert ("print ended
  unanswered") and the next print starts clean; an uncertain end teaches the camera nothing;
* defect 9: a reminder is logged as a reminder, never as a second confirmation;
* defect 7: the history closes the last run's open jobs before the printer's first poll can open this
  run's (20 starts with a print already running).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from appliance.actions import printer_control
from appliance.config.loader import load_config
from appliance.history import sink as history_sink
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext
from tests.api_harness import api_service, replay_scene
from tests.http_peers import serving

pytestmark = pytest.mark.usefixtures("shipped_model")
BASE = "layerwatch/layerwatch"


def _job(state: str, completion: float | None) -> dict:
    return {"state": state, "progress": {"completion": completion}, "job": {"file": {"name": "cube.gcode"}}}


def _alert(service, alert_id: str) -> dict:  # type: ignore[no-untyped-def]
    return next(a for a in service.get("/api/alerts").json() if a["id"] == alert_id)


def test_answer_ids_published_withdraw_by_alert_id_and_temperatures_on_their_own_topic(
    tmp_path: Path, mosquitto, subscriber
):  # type: ignore[no-untyped-def]
    temps = {
        "temperature": {"tool0": {"actual": 210.5, "target": 210.0}, "bed": {"actual": 60.1, "target": 60}}
    }
    with serving((204, None, {})) as octoprint:
        octoprint.responder = lambda r: (
            (200, _job("Printing", 40.0), {}) if r.path == "/api/job"
            else (200, temps, {}) if r.path == "/api/printer" else None
        )  # fmt: skip
        extra = (f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\napi_key = "k3y"\n'
                 'poll_interval_s = 0.2\naction = "none"\n'
                 f'[mqtt]\nbroker_url = "{mosquitto.url}"\n'
                 "[telemetry]\nenabled = true\nfrom_printer = true\n")  # fmt: skip
        subscriber.subscribe(f"{BASE}/#")
        with api_service(tmp_path, extra=extra) as service:
            alert_id = service.wait(lambda: service.status()["active_alerts"], what="alert")[0]["alert"]
            subscriber.client.publish(f"{BASE}/printer/real_failure/set", alert_id.encode(), qos=1)
            raw = subscriber.wait_for(f"{BASE}/event", lambda p: b'"answer"' in p and alert_id.encode() in p)
            event = json.loads(raw)
            assert event["type"] == "answer" and event["label"] == "failure" and event["learned"] >= 1
            assert len(event["answer_ids"]) == event["learned"] and event["learner"]["failure"] >= 1
            listed = service.wait(lambda: _alert(service, alert_id)["answer_ids"], what="answer ids listed")
            assert listed == event["answer_ids"]
            # withdraw by the alert id: every answer given for its frames goes
            subscriber.client.publish(f"{BASE}/printer/withdraw/set", alert_id.encode(), qos=1)
            raw = subscriber.wait_for(f"{BASE}/event", lambda p: b'"answer_withdrawn"' in p)
            withdrawn = json.loads(raw)
            assert withdrawn["removed"] == event["learned"], withdrawn
            assert withdrawn["learner"]["failure"] == event["learner"]["failure"] - event["learned"]
            service.wait(
                lambda: _alert(service, alert_id)["answer"] is None, what="answer withdrawn in the list"
            )
            # the printer's temperatures: a retained topic of their own, never P/event
            reading = json.loads(subscriber.wait_for(f"{BASE}/printer/temperatures"))
            assert reading["nozzle_temp"] == 210.5 and reading["bed_target"] == 60
            time.sleep(1.0)  # a few more polls
            events = subscriber.json_on(f"{BASE}/event")
            assert not [e for e in events if e.get("type") == "printer_temperatures"]
            assert len(subscriber.json_on(f"{BASE}/printer/temperatures")) >= 3
            # "don't watch this print" over MQTT
            subscriber.client.publish(f"{BASE}/printer/skip_print/set", b"PRESS", qos=1)
            service.wait(lambda: service.camera()["state"] == "paused" and service.camera()["skipping_print"],
                         timeout=20, what="not watching this print")  # fmt: skip


def test_a_print_ending_closes_its_alert_and_the_next_print_starts_clean(tmp_path: Path):
    job = {"value": _job("Printing", 60.0)}
    with serving((204, None, {})) as octoprint:
        octoprint.responder = lambda r: (200, job["value"], {}) if r.path == "/api/job" else None
        extra = (
            f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\napi_key = "k3y"\n'
            'poll_interval_s = 0.2\naction = "none"\n'
        )  # fmt: skip (watching only while printing)
        with api_service(tmp_path, extra=extra) as service:
            first = service.wait(lambda: service.status()["active_alerts"], what="alert")[0]["alert"]
            failures = service.camera()["learner"]["failure"]
            # back to idle at 60 % without a cancel word: an uncertain end
            job["value"] = _job("Operational", 60.0)
            closed = service.wait(lambda: _alert(service, first)["closed"], timeout=20, what="closed alert")
            assert closed == "print_ended_unanswered"
            # the camera rests (no print: monitoring paused) with no alert carried over
            service.wait(lambda: service.camera()["state"] == "paused", timeout=10, what="pause")
            assert not service.status()["active_alerts"] and not service.camera()["alert_active"]
            assert service.camera()["learner"]["failure"] == failures  # nothing learned from it
            # the next print starts clean: a new failure there is a new alert at once (no old cooldown)
            job["value"] = _job("Printing", 1.0)
            second = service.wait(
                lambda: [a for a in service.status()["active_alerts"] if a["alert"] != first],
                timeout=60, what="a new alert in the new print",
            )[0]["alert"]  # fmt: skip
            assert second != first
    log = (tmp_path / "service.log").read_text()
    assert "uncertain end" in log


def test_a_reminder_is_logged_as_a_reminder(tmp_path: Path):
    replay_scene(tmp_path / "replay", normal=1, failures=40)  # the failure stays in view
    with api_service(tmp_path, cooldown_s=0.5) as service:
        alert_id = service.wait(lambda: service.status()["active_alerts"], what="alert")[0]["alert"]
        service.wait(lambda: _alert(service, alert_id)["repeats"] >= 1, timeout=30, what="a reminder")
    log = (tmp_path / "service.log").read_text()
    assert len(re.findall(rf"PRINT FAILURE confirmed \(alert {alert_id}\b", log)) == 1, log[-3000:]
    assert re.search(rf"reminder 1 of alert {alert_id}: failure still seen", log)


def test_start_up_with_a_print_running_never_records_a_job_interrupted_at_its_start(tmp_path: Path):
    """20 starts, each leaving its job open (as a crash or a power cut does): every start closes the last
    run's job as interrupted before the printer's first poll opens this run's, never the new one."""
    with serving((200, _job("Printing", 30.0), {})) as octoprint:
        config_file = tmp_path / "layerwatch.toml"
        replay = replay_scene(tmp_path / "replay", normal=1, failures=0)
        config_file.write_text(
            f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[[cameras]]\nname = "printer"\nsource = {{ type = "replay", path = "{replay}" }}\n'
            f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\npoll_interval_s = 0.05\n'
            "[history]\nenabled = true\n"
        )
        config = load_config(config_file)
        for run in range(20):
            context = ServiceContext(CommandQueue(), lambda _: {}, ["printer"], tmp_path / "state")
            # in the service's order (appliance.service.wiring.SINK_MODULES): the printer link first
            sinks = printer_control.create_sinks(config, context) + history_sink.create_sinks(config, context)
            for sink in sinks:
                sink.start()  # type: ignore[attr-defined]
            history = sinks[-1]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(history.store.jobs) <= run:
                time.sleep(0.01)
            time.sleep(0.15)  # a few more polls
            assert [job.ended for job in history.store.jobs[run:]] == [None], f"start {run}"
            sinks[0].stop()  # type: ignore[attr-defined]
            history.writer.stop()  # no history.stop(): the job stays open, as after a crash
            history.slow.stop()
        jobs = json.loads((tmp_path / "state" / "history" / "jobs.json").read_text())
    assert len(jobs) == 20
    assert [j["outcome"] for j in jobs[:-1]] == ["interrupted"] * 19 and jobs[-1]["ended"] is None


def test_a_camera_lost_during_a_print_raises_its_own_alert_and_pauses(tmp_path: Path, snapshot_server):  # type: ignore[no-untyped-def]
    """Beyond the peers (issue 32): an HTTP camera that stops answering while the printer prints is an
    alert of its own after alarm.camera_lost_alert_s; with camera_lost_pauses_print the printer is paused
    after the countdown; the camera coming back ends the outage."""
    with serving((204, None, {})) as octoprint:
        octoprint.responder = lambda r: (200, _job("Printing", 20.0), {}) if r.path == "/api/job" else None
        extra = (f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\napi_key = "k3y"\n'
                 'poll_interval_s = 0.2\naction = "pause"\n')  # fmt: skip
        source = f'source = {{ type = "http", url = "{snapshot_server.url()}", timeout_s = 1, retries = 0 }}'
        alarm = "camera_lost_alert_s = 1\ncamera_lost_pauses_print = true"
        with api_service(tmp_path, extra=extra, source=source, calibrated=False, countdown_s=1,
                         alarm_extra=alarm) as service:  # fmt: skip
            service.wait(lambda: service.camera().get("analysed", 0) > 2, what="frames from the camera")
            with snapshot_server.lock:
                snapshot_server.script.extend([503] * 100000)  # the camera goes away
            lost = service.wait(
                lambda: [a for a in service.status()["active_alerts"] if "offline" in (a.get("cause") or "")],
                timeout=30, what="the camera-lost alert",
            )[0]  # fmt: skip
            assert lost["plan"]["kind"] == "printer" and "during a print" in lost["cause"]
            done = service.wait(
                lambda: [a for a in service.status()["active_alerts"] if a["alert"] == lost["alert"]
                         and a["plan"]["phase"] == "done"], timeout=30, what="the print paused",
            )  # fmt: skip
            assert done and octoprint.posts("/api/job")[-1].json()["command"] == "pause"
            history = next(a for a in service.get("/api/alerts").json() if a["id"] == lost["alert"])
            assert history["image"] is None and "offline" in history["cause"]
            with snapshot_server.lock:
                snapshot_server.script.clear()  # back
            service.wait(
                lambda: service.camera()["camera_status"] == "online", timeout=30, what="camera back"
            )
    assert "during a print: the print is not watched" in (tmp_path / "service.log").read_text()
