"""Fault suite, MQTT side, against a real ``layerwatch run`` and a real mosquitto.

- 5,000 commands in 10 s over MQTT (acknowledge presses, every tenth one malformed): every valid one
  is handled, the analysis rate stays within 20 % of the rate before, resident memory within 5 MB.
- A soak at full rate (replay without pacing, no analysis interval) with MQTT on: resident memory
  grows less than 5 MB after the first minute. ``LAYERWATCH_SOAK_S`` sets its length (default 600 s;
  e.g. ``LAYERWATCH_SOAK_S=120`` locally).

The broker stopped during an alert and the service SIGKILLed with an alert queued (each delivered
exactly once) are in ``tests/test_mqtt_outbox.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import start_service, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"
STATE = f"{BASE}/printer/state"
SOAK_S = float(os.environ.get("LAYERWATCH_SOAK_S", "600"))
SOAK_WARM_S = min(60.0, SOAK_S / 4)  # "after the first minute" (a quarter of a shorter local run)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def analysed_at(watcher: Subscriber) -> tuple[float, int]:
    """(now, frames analysed) from the newest state message."""
    states = [s for s in watcher.json_on(STATE) if "analysed" in s]
    assert states, "no state message yet"
    return time.monotonic(), int(states[-1]["analysed"])


def rate_over(watcher: Subscriber, seconds: float) -> float:
    """Frames analysed per second over the next ``seconds``, from the state messages."""
    t0, n0 = analysed_at(watcher)
    time.sleep(seconds)
    t1, n1 = analysed_at(watcher)
    return (n1 - n0) / (t1 - t0)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_5000_commands_in_10_s_keep_the_rate_and_the_memory(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker
) -> None:
    # a 20 frames/s camera analysed as it comes: the rate is the camera's, so a slower loop shows
    config = write_config(
        tmp_path, synthetic_clip, f'[mqtt]\nbroker_url = "{mosquitto.url}"\n', rate_fps=20, interval=0
    )
    log = tmp_path / "service.log"
    proc = start_service(config, log=log)
    watcher = Subscriber(mosquitto.port)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood")
    try:
        watcher.subscribe(STATE)
        watcher.wait_for(STATE, lambda p: json.loads(p).get("analysed", 0) > 20, timeout=60)
        sender.connect("127.0.0.1", mosquitto.port)
        sender.loop_start()
        time.sleep(3)  # past the start-up
        rss_before = rss_mb(proc.pid)
        rate_before = rate_over(watcher, 8)

        sent = valid = 0
        started = time.monotonic()
        t0, n0 = analysed_at(watcher)
        while sent < 5000:
            # paced: 500 a second, the last one at about 10 s
            ahead = started + sent / 500 - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            if sent % 10 == 9:
                sender.publish(f"{BASE}/monitoring/set", "maybe")  # rejected: neither ON nor OFF
            else:
                sender.publish(f"{BASE}/acknowledge/set", "PRESS")
                valid += 1
            sent += 1
        t1, n1 = analysed_at(watcher)
        rate_during = (n1 - n0) / (t1 - t0)
        sent_s = time.monotonic() - started
        time.sleep(2)
        rss_after = rss_mb(proc.pid)
        rate_after = rate_over(watcher, 4)
    finally:
        sender.loop_stop()
        sender.disconnect()
        stop(proc)
        watcher.close()
    text = log.read_text()
    handled = text.count("command acknowledge (camera all) from mqtt")
    rejected = text.count("MQTT command on")
    print(
        f"{sent} commands in {sent_s:.1f} s: {handled} handled, {rejected} rejected; analysis "
        f"{rate_before:.1f} -> {rate_during:.1f} -> {rate_after:.1f} frames/s; "
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB"
    )
    assert sent_s < 11
    assert handled == valid, f"{valid - handled} of {valid} commands lost"
    assert rejected >= 5000 - valid
    assert rate_during >= 0.8 * rate_before, (rate_before, rate_during)
    assert rate_after >= 0.8 * rate_before, (rate_before, rate_after)
    assert rss_after - rss_before < 5.0, f"RSS grew {rss_after - rss_before:.1f} MB"


@pytest.mark.slow
def test_soak_at_full_rate_with_mqtt_keeps_the_memory_flat(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker
) -> None:
    config = write_config(
        tmp_path, synthetic_clip, f'[mqtt]\nbroker_url = "{mosquitto.url}"\n', rate_fps=0, interval=0
    )
    log = tmp_path / "service.log"
    proc = start_service(config, log=log)
    watcher = Subscriber(mosquitto.port)
    samples: list[tuple[float, float]] = []  # (seconds since start, RSS MB)
    try:
        watcher.subscribe(STATE)
        watcher.wait_for(STATE, lambda p: b'"decision"' in p, timeout=60)
        started = time.monotonic()
        first_count = analysed_at(watcher)[1]
        while (elapsed := time.monotonic() - started) < SOAK_S:
            assert proc.poll() is None, f"the service exited: {log.read_text()[-2000:]}"
            samples.append((elapsed, rss_mb(proc.pid)))
            time.sleep(min(5.0, max(0.1, SOAK_S - elapsed)))
        samples.append((time.monotonic() - started, rss_mb(proc.pid)))
        frames = analysed_at(watcher)[1] - first_count
        newest = watcher.json_on(STATE)[-1]
    finally:
        stop(proc)
        watcher.close()
    warm = [mb for at, mb in samples if at >= SOAK_WARM_S]
    baseline, peak, final = warm[0], max(warm), warm[-1]
    print(
        f"soak {SOAK_S:.0f} s at {frames / SOAK_S:.1f} frames/s with MQTT: RSS {samples[0][1]:.1f} MB at "
        f"start, {baseline:.1f} MB after {SOAK_WARM_S:.0f} s, peak {peak:.1f}, end {final:.1f} "
        f"(growth after warm-up {peak - baseline:+.1f} MB)"
    )
    assert frames > 10 * SOAK_S, "the loop did not run at full rate"
    assert newest["camera_status"] == "online"
    assert peak - baseline < 5.0, f"RSS grew {peak - baseline:.1f} MB after the first minute"
