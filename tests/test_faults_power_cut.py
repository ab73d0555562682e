"""Fault suite: a power cut, simulated by SIGKILL at random moments of calibrations and outbox writes.

A real ``layerwatch run`` raises an alert about every half second (a failing replay, ``cooldown_s = 0``:
each alert writes its evidence JPEG and an entry with its image to the MQTT and the Telegram outbox;
Telegram answers 503 so its entries pile up on disk) and recalibrates over and over (MQTT
``recalibrate`` commands, 3 frames each, so a calibration is written every few tenths of a second). It is
SIGKILLed after a random delay, ``RUNS`` times (bounded: about 20 s in all). Then a last start must go
to READY and analyse frames with nothing left that breaks start-up: every temporary file of an
interrupted write removed (and said so), the calibration readable (atomic writes: old or new, never
half), every outbox entry readable or set aside with a log line, and a clean SIGTERM exit.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest

from appliance.actions.outbox import Outbox
from appliance.config.model import DetectorConfig
from appliance.detector import load_calibration, load_detector
from appliance.state_files import is_leftover
from tests.alert_scenario import calibrate, replay_folder, service_toml
from tests.fault_process import LiveService
from tests.http_peers import serving
from tests.mqtt_fixtures import Broker
from tests.service_harness import NotifyListener

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

RUNS = 6
MAX_KILL_DELAY_S = 1.5
TOKEN = "555000:AAE-p0w3r-cut-t0k3n"


def _config(tmp_path: Path, state: Path, replay: Path, broker: Broker, telegram_url: str) -> Path:
    extra = (
        "[cameras.calibration]\nframes = 3\ninterval_s = 0\n"
        '[detector]\ntype = "onnx"\n'
        f'[mqtt]\nbroker_url = "{broker.url}"\n'
        f'[notify.telegram]\nbot_token = "{TOKEN}"\nchat_id = "7"\napi_url = "{telegram_url}"\n'
        "retry_backoff_s = 0.2\n"
    )
    text = service_toml(state, replay, extra, loop=True, interval=0.05)
    config = tmp_path / "layerwatch.toml"
    config.write_text(text.replace("cooldown_s = 600", "cooldown_s = 0"))
    return config


def _keep_recalibrating(broker: Broker, stop: threading.Event) -> None:
    """A recalibrate command every 0.15 s until ``stop`` (merged while one runs; bounded by the caller)."""
    while not stop.wait(0.15):
        with contextlib.suppress(OSError):
            mqtt_publish.single("layerwatch/layerwatch/printer/recalibrate/set", "PRESS", qos=0,
                                hostname="127.0.0.1", port=broker.port)  # fmt: skip


def test_sigkill_at_random_moments_leaves_nothing_that_breaks_start_up(
    tmp_path: Path, mosquitto: Broker
) -> None:
    state = tmp_path / "state"
    calibrate(state, tmp_path, detector_config=DetectorConfig(type="onnx"))
    replay = replay_folder(tmp_path / "failing", normal=2, failures=8)
    rng = random.Random(14)
    kills: list[dict[str, object]] = []
    started = time.monotonic()
    with serving((503, {"ok": False, "error_code": 503, "description": "down"}, {})) as telegram:
        config = _config(tmp_path, state, replay, mosquitto, telegram.url)
        for run in range(RUNS):
            service = LiveService(config)
            stop = threading.Event()
            commands = threading.Thread(target=_keep_recalibrating, args=(mosquitto, stop), daemon=True)
            try:
                service.wait_frames(3, timeout=60)
                commands.start()
                time.sleep(rng.uniform(0.2, MAX_KILL_DELAY_S))
            finally:
                service.kill()  # SIGKILL: the power cut
                stop.set()
                commands.join(2)
            log = service.log()
            kills.append({
                "run": run,
                "calibrating": log.count("recalibrating from") > log.count("recalibrated in"),
                # a first alert, or a reminder of it (cooldown_s = 0): each writes its outbox entries
                "alerts": log.count("PRINT FAILURE confirmed") + log.count("failure still seen, unanswered"),
                "calibrations": log.count("recalibrated in"),
            })  # fmt: skip
        killing_s = time.monotonic() - started

        leftovers = sorted(
            str(p.relative_to(state)) for p in state.rglob(".*") if p.is_file() and is_leftover(p)
        )
        # the last start: READY, frames, nothing set aside that was written atomically
        listener = NotifyListener(tmp_path / "notify.sock")
        service = LiveService(config, {"NOTIFY_SOCKET": str(listener.path)})
        try:
            listener.wait_for("READY=1", timeout=60)
            service.wait_frames(5, timeout=30)
            rc, took = service.terminate()
        finally:
            service.kill()
            listener.close()
    log = service.log()
    during = sum(bool(k["calibrating"]) for k in kills)
    alerts = sum(int(k["alerts"]) for k in kills)
    calibrations = sum(int(k["calibrations"]) for k in kills)
    print(f"power cut: {RUNS} SIGKILLs in {killing_s:.1f} s ({during} during a calibration; {alerts} alerts "
          f"and {calibrations} calibrations written); temp files left by the kills: {len(leftovers)}; "
          f"last start exit {took:.2f} s")  # fmt: skip
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert alerts >= RUNS // 2, kills  # the kills landed among outbox writes (about one alert a run)
    assert calibrations >= 1, kills
    if leftovers:
        assert f"removed {len(leftovers)} temporary file(s)" in log, (leftovers, log[-3000:])
    assert not [p for p in state.rglob(".*") if p.is_file() and is_leftover(p)]
    # atomic writes: the calibration is the old one or a new one, never half of one (nothing set aside)
    detector = load_detector(DetectorConfig(type="onnx"))
    assert load_calibration(state, "printer", detector.bundle.fingerprint()) is not None
    assert "calibration of printer unreadable" not in log
    assert not list(state.rglob("*.bad-*")), list(state.rglob("*.bad-*"))
    for channel in ("mqtt", "telegram"):
        box = Outbox(state / "outbox" / channel)
        for path in box.pending():
            assert box.load(path) is not None, path  # every entry on disk is whole
            assert json.loads(path.read_text())["kind"] == "alert"
