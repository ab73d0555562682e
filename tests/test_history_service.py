"""A print job end to end: the real service watches a replay camera while a simulated OctoPrint (a local
HTTP peer) runs a job; job start, progress steps, photos, completion and the timelapse reach a local
Telegram peer in order (into the configured topic), the timelapse is a valid MP4 under its limit with
the expected duration, and the job shows on MQTT (retained ``P/job``, Home Assistant discovery).
Without a printer, a job is the span of monitoring on to off; on a full disk (a real 2 MB tmpfs)
saving stops, is said on MQTT, and the service keeps analysing."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest

from appliance.actions.dispatcher import event_hub
from appliance.config import load_config
from appliance.history.timelapse import probe
from appliance.service.runner import Service
from tests.http_peers import Request, serving
from tests.mqtt_fixtures import Broker, Subscriber

pytestmark = pytest.mark.usefixtures("shipped_model")
TOKEN = "123456:AAH-h1st0ry-t0ken"
BASE = "layerwatch/layerwatch"


class SimulatedOctoPrint:
    """``GET /api/job`` answers from a job the test moves forward."""

    def __init__(self) -> None:
        self.state, self.progress, self.file = "Operational", None, None

    def __call__(self, request: Request):
        if request.path == "/api/job":
            job = {"file": {"name": self.file}} if self.file else {"file": {"name": None}}
            return 200, {"state": self.state, "progress": {"completion": self.progress}, "job": job}, {}
        return None


def _caption(post: Request) -> str:
    return post.field("caption") if "caption" in post.parts else post.field("text")


def _wait(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def _run(path: Path) -> tuple[Service, threading.Thread]:
    service = Service(load_config(path, environ={}))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return service, thread


def test_a_printed_job_is_told_in_order_and_ends_in_a_timelapse(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker, subscriber: Subscriber
):
    printer = SimulatedOctoPrint()
    max_bytes = 400_000
    with serving() as telegram, serving((204, None, {})) as octoprint:
        octoprint.responder = printer
        path = tmp_path / "layerwatch.toml"
        path.write_text(
            f'[service]\nstate_dir = "{tmp_path / "state"}"\nanalysis_interval_s = 0.05\n'
            f'[[cameras]]\nname = "printer"\n[cameras.source]\ntype = "replay"\npath = "{synthetic_clip}"\n'
            "rate_fps = 20\nloop = true\n"
            f'[mqtt]\nbroker_url = "{mosquitto.url}"\n'
            f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\npoll_interval_s = 0.2\n'
            'action = "none"\n'
            f'[notify.telegram]\nbot_token = "{TOKEN}"\nchat_id = "-1001"\nmessage_thread_id = 42\n'
            f'api_url = "{telegram.url}"\n'
            f'[history]\nenabled = true\nimages_dir = "{tmp_path / "images"}"\nframe_interval_s = 0\n'
            "min_free_mb = 1\n"
            "[history.notify]\nprogress_step = 25\nphoto_interval_s = 1.5\n"
            f"[history.timelapse]\ntarget_duration_s = 2\nmax_bytes = {max_bytes}\n"
        )
        subscriber.subscribe(f"{BASE}/#")
        subscriber.subscribe("homeassistant/#")
        service, thread = _run(path)
        try:
            discovery = json.loads(subscriber.wait_for("homeassistant/device/layerwatch/config"))
            components = discovery["cmps"]
            for key in ("job_name", "job_progress", "last_timelapse"):
                assert components[f"layerwatch_{key}"]["state_topic"] == f"{BASE}/job"
            history = next(s for s in service.sinks if hasattr(s, "tracker"))
            _wait(lambda: history.tracker.state == "operational", 30, "the idle printer polled")
            printer.state, printer.progress, printer.file = "Printing", 0.0, "benchy.gcode"
            for percent in range(10, 101, 10):
                time.sleep(0.45)
                printer.progress = float(percent)
            time.sleep(0.45)
            printer.state, printer.file = "Operational", None
            _wait(lambda: telegram.posts("/bot" + TOKEN + "/sendVideo"), 90, "the timelapse on Telegram")
            raw = subscriber.wait_for(f"{BASE}/job", lambda p: bool(json.loads(p).get("last_timelapse")))
        finally:
            service.stop_event.set()
            thread.join(10)
        posts = telegram.posts()
    assert all(p.field("message_thread_id") == "42" and p.field("chat_id") == "-1001" for p in posts)
    captions = [_caption(p).splitlines()[0] for p in posts]
    started = captions.index("Print started: benchy.gcode")
    progress = [i for i, c in enumerate(captions) if c.startswith("benchy.gcode: ")]
    assert [captions[i] for i in progress] == [f"benchy.gcode: {p} %" for p in (25, 50, 75, 100)]
    photos = [i for i, c in enumerate(captions) if c.startswith("printer: benchy.gcode")]
    ended = captions.index("Print completed: benchy.gcode")
    timelapse = captions.index("Timelapse: benchy.gcode")
    assert started < progress[0] and progress[-1] < ended < timelapse == len(captions) - 1, captions
    assert photos and all(started < i < ended for i in photos), captions
    assert all(posts[i].path.endswith("/sendPhoto") for i in [*photos, ended])
    assert "Printer state: printing" in captions  # the state change came too
    video = posts[timelapse].parts["video"]
    assert video.content_type == "video/mp4" and len(video.data) <= max_bytes

    job = json.loads(raw)
    assert job["name"] == "benchy.gcode" and job["outcome"] == "completed" and job["progress"] == 100.0
    [record] = json.loads((tmp_path / "state" / "history" / "jobs.json").read_text())
    assert record["outcome"] == "completed" and record["source"] == "printer"
    mp4 = Path(record["timelapses"]["printer"])
    frames = sorted(mp4.parent.glob("*.jpg"))
    assert mp4.parent == tmp_path / "images" / "printer" / record["id"] and len(frames) >= 2
    assert [f.name for f in frames] == sorted(f.name for f in frames) and frames[0].name[8] == "T"
    info = probe(mp4)
    fps = math.ceil(len(frames) / 2)
    assert info["codec"] == "h264" and info["frames"] == len(frames)
    assert abs(info["duration_s"] - len(frames) / fps) < 0.1
    assert mp4.stat().st_size <= max_bytes and mp4.read_bytes() == video.data


def test_without_a_printer_a_job_is_monitoring_on_to_off_and_a_full_disk_stops_saving_not_watching(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker, subscriber: Subscriber, small_tmpfs: Path
):
    path = tmp_path / "layerwatch.toml"
    path.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\nanalysis_interval_s = 0.02\n'
        f'[[cameras]]\nname = "printer"\n[cameras.source]\ntype = "replay"\npath = "{synthetic_clip}"\n'
        "rate_fps = 50\nloop = true\n"
        f'[mqtt]\nbroker_url = "{mosquitto.url}"\n'
        f'[history]\nenabled = true\nimages_dir = "{small_tmpfs}"\nframe_interval_s = 0\njpeg_quality = 100\n'
        "min_free_mb = 1.2\n[history.timelapse]\nenabled = false\n"
    )
    subscriber.subscribe(f"{BASE}/#")
    service, thread = _run(path)
    events: list[str] = []
    try:
        _wait(lambda: service.pipelines and service.pipelines[0].analysed > 0, 30, "first frame")
        event_hub(service.context).listen(lambda kind, payload: events.append(kind))
        raw = subscriber.wait_for(
            f"{BASE}/event", lambda p: json.loads(p)["type"] == "history_saving_stopped"
        )
        stopped = json.loads(raw)
        analysed_then = service.pipelines[0].analysed
        time.sleep(1.5)
        assert service.pipelines[0].analysed > analysed_then + 10  # still watching
        subscriber.client.publish(f"{BASE}/printer/monitoring/set", "OFF", qos=1)
        job = json.loads(subscriber.wait_for(f"{BASE}/job", lambda p: json.loads(p)["outcome"] is not None))
    finally:
        service.stop_event.set()
        thread.join(10)
    assert stopped["min_free_mb"] == 1.2 and stopped["free_mb"] < 1.2 and "floor" in stopped["reason"]
    assert job["source"] == "monitoring" and job["outcome"] == "completed" and job["frames"] > 0
    frames = list(small_tmpfs.glob("printer/*/*.jpg"))
    assert len(frames) == job["frames"]
    assert json.loads((tmp_path / "state" / "history" / "jobs.json").read_text())[0]["outcome"] == "completed"


def test_job_messages_never_use_up_the_alert_rate_limit(tmp_path: Path):
    from appliance.actions.dispatcher import ChannelPolicy, Notification
    from tests.alert_scenario import synthetic_alert

    policy = ChannelPolicy(max_per_hour=2)
    for i in range(20):
        job = Notification(key=f"job-{i}", kind="job", camera="printer", title="p", description="d")
        assert policy.allows(job, float(i)) is None
    alert, _, _ = synthetic_alert()
    assert policy.allows(Notification(key="a-0", kind="alert", camera="printer", title="t", description="d"),
                         30.0) is None  # fmt: skip
    assert len(policy._sent) == 1  # only the alert counted
    _ = alert


def test_an_alert_goes_out_before_job_messages_waiting_in_the_outbox(tmp_path: Path):
    from appliance.actions.dispatcher import Notification
    from appliance.actions.outbox import Outbox

    box = Outbox(tmp_path / "outbox")
    for i in range(3):
        box.put(Notification(key=f"job-{i:03d}", kind="job", camera=None, title="p", description="d"))
    box.put(Notification(key="abcdef123456-0", kind="alert", camera="printer", title="t", description="d"))
    order = [p.name.split("-", 1)[1] for p in box.pending()]
    assert order == ["abcdef123456-0.json", "job-000.json", "job-001.json", "job-002.json"]
