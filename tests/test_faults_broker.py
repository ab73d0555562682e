"""Fault suite, MQTT side, against a real ``layerwatch run`` and a real mosquitto.

- 5,000 commands in 10 s over MQTT (acknowledge presses, every tenth one malformed) while another
  process uses about 1.4 of the machine's cores (``tests/cpu_hog.py``, as OctoPrint beside it on a Pi:
  issue 33 item 5 saw 10.0 -> 0.1 frames/s that way): every valid one is handled or counted as dropped,
  the analysis rate stays within 20 % of the rate before (with the hog running), a state message comes
  at least every ``STATE_GAP_S`` seconds, resident memory stays within 5 MB.
- A soak at full rate (replay without pacing, no analysis interval) with MQTT on: resident memory
  grows less than 5 MB after the first minute. ``LAYERWATCH_SOAK_S`` sets its length (default 600 s;
  e.g. ``LAYERWATCH_SOAK_S=120`` locally).

The broker stopped during an alert and the service SIGKILLed with an alert queued (each delivered
exactly once) are in ``tests/test_mqtt_outbox.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.cpu_hog import cpu_hog, cpu_seconds
from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import start_service, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"
STATE = f"{BASE}/printer/state"
SOAK_S = float(os.environ.get("LAYERWATCH_SOAK_S", "600"))
SOAK_WARM_S = min(60.0, SOAK_S / 4)  # "after the first minute" (a quarter of a shorter local run)
#: the other process's CPU during the flood, in cores (issue 33: about 1.4 of 2); LAYERWATCH_HOG_CORES sets it
HOG_CORES = float(os.environ.get("LAYERWATCH_HOG_CORES", "1.4"))
STATE_GAP_S = 8.0  # the longest wait for a state message during the flood (mqtt.state_interval_s is 5)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def analysed_at(watcher: Subscriber, timeout: float = 5.0) -> tuple[float, int]:
    """(arrival time, frames analysed) of the next state message: taken as it arrives, so that a
    rate between two of them is not off by the up to 1 s between state messages."""
    seen = len(watcher.json_on(STATE))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = watcher.json_on(STATE)
        if len(states) > seen and "analysed" in states[-1]:
            return time.monotonic(), int(states[-1]["analysed"])
        time.sleep(0.01)
    raise AssertionError(f"no state message within {timeout} s")


def rate_over(watcher: Subscriber, seconds: float) -> float:
    """Frames analysed per second over the next ``seconds``, from the state messages."""
    t0, n0 = analysed_at(watcher)
    time.sleep(seconds)
    t1, n1 = analysed_at(watcher)
    return (n1 - n0) / (t1 - t0)


def accounted(text: str) -> tuple[int, int]:
    """(acknowledges handled, commands dropped) so far, from the service's log."""
    handled = text.count("command acknowledge (camera all) from mqtt")
    dropped = max((int(m) for m in re.findall(r"commands: (\d+) dropped so far", text)), default=0)
    return handled, dropped


def wait_accounted(log: Path, valid: int, timeout: float) -> float:
    """Wait until every valid command was handled or counted as dropped; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if sum(accounted(log.read_text())) >= valid:
            return time.monotonic() - started
        time.sleep(0.2)
    return time.monotonic() - started


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
    # a 10 frames/s camera analysed as it comes: the rate is the camera's (with CPU to spare on a
    # loaded machine), so a loop slowed by the commands shows
    config = write_config(
        tmp_path, synthetic_clip, f'[mqtt]\nbroker_url = "{mosquitto.url}"\n', rate_fps=10, interval=0
    )
    log = tmp_path / "service.log"
    proc = start_service(config, log=log)
    watcher = Subscriber(mosquitto.port)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood")
    hog = cpu_hog(HOG_CORES, seconds=90)
    try:
        watcher.subscribe(STATE)
        watcher.wait_for(STATE, lambda p: json.loads(p).get("analysed", 0) > 20, timeout=60)
        sender.connect("127.0.0.1", mosquitto.port)
        sender.loop_start()
        hog_procs = hog.__enter__()
        time.sleep(3)  # past the start-up, the hog running
        rss_before = rss_mb(proc.pid)
        rate_before = rate_over(watcher, 8)

        sent = valid = 0
        t0, n0 = analysed_at(watcher)
        started = time.monotonic()
        hog_cpu = cpu_seconds(hog_procs)
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
        sent_s = time.monotonic() - started
        hog_cores = (cpu_seconds(hog_procs) - hog_cpu) / sent_s
        t1, n1 = analysed_at(watcher)
        rate_during = (n1 - n0) / (t1 - t0)
        arrivals = watcher.arrivals(STATE)
        gap = max((b - a for a, b in itertools.pairwise(arrivals) if b >= t0 and a <= t1),
                  default=0.0)  # fmt: skip
        backlog_s = wait_accounted(log, valid, timeout=60)  # the queue's backlog handled (bounded)
        rss_after = rss_mb(proc.pid)
        rate_after = rate_over(watcher, 4)
    finally:
        hog.__exit__(None, None, None)
        sender.loop_stop()
        sender.disconnect()
        stop(proc)
        watcher.close()
    text = log.read_text()
    handled, dropped = accounted(text)
    rejected = text.count("MQTT command on")
    print(
        f"{sent} commands in {sent_s:.1f} s with a hog using {hog_cores:.2f} cores: {handled} handled, "
        f"{dropped} dropped, {rejected} rejected; analysis {rate_before:.1f} -> {rate_during:.1f} -> "
        f"{rate_after:.1f} frames/s; longest wait for a state message {gap:.1f} s; backlog handled "
        f"{backlog_s:.1f} s after the flood; "
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB"
    )
    assert sent_s < 11
    assert handled + dropped == valid, (
        f"{valid - handled - dropped} of {valid} commands neither handled nor counted"
    )
    assert rejected >= 5000 - valid
    assert rate_during >= 0.8 * rate_before, (rate_before, rate_during)
    assert gap <= STATE_GAP_S, f"no state message for {gap:.1f} s during the flood"
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
