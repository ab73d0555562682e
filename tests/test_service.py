"""The service as systemd runs it: READY/WATCHDOG/STATUS on NOTIFY_SOCKET, clean SIGTERM, test mode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.service_harness import NotifyListener, start_service, write_config

pytestmark = pytest.mark.usefixtures("shipped_model")


def test_notify_ready_watchdog_status_and_clean_sigterm(tmp_path: Path, synthetic_clip: Path):
    listener = NotifyListener(tmp_path / "notify.sock")
    config = write_config(tmp_path, synthetic_clip)
    proc = start_service(
        config, {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}, "--print-decisions"
    )
    try:
        listener.wait_for("READY=1", timeout=30)
        first_ping = listener.wait_for("WATCHDOG=1", timeout=5)
        listener.messages = [(t, m) for t, m in listener.messages if t > first_ping]
        listener.wait_for("WATCHDOG=1", timeout=5)  # pinged again: the loop keeps feeding it
        listener.wait_for("STATUS=printer:", timeout=5)
        assert any("fps" in m for _, m in listener.messages if "STATUS=" in m)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
        assert time.monotonic() - sent < 2.0, "SIGTERM must stop the service within 2 s"
        assert rc == 0
        listener.wait_for("STOPPING=1", timeout=1)
        out = proc.stdout.read() if proc.stdout else ""
        assert "score" in out and "state" in out  # one printed line per decision
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


def test_ready_even_when_camera_is_offline(tmp_path: Path):
    """A camera that is down at boot must not keep systemd waiting: READY with camera_offline."""
    listener = NotifyListener(tmp_path / "notify.sock")
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path}"\n[[cameras]]\nname = "printer"\n'
        'source = { type = "http", url = "http://127.0.0.1:9/snap.jpg", timeout_s = 0.5, retries = 0 }\n'
    )
    proc = start_service(config, {"NOTIFY_SOCKET": str(listener.path)})
    try:
        listener.wait_for("READY=1", timeout=30)
        listener.wait_for("camera_offline", timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        listener.close()


def test_test_mode_waits_for_a_manual_trigger(tmp_path: Path, synthetic_clip: Path):
    """TEST_MODE as the RTSP+Bedrock detector had it: nothing is analysed until a trigger, then one
    frame per camera per trigger; the service keeps running (``layerwatch test`` is the one-shot)."""
    from appliance.config.loader import load_config
    from appliance.service.runner import Service

    config = load_config(write_config(tmp_path, synthetic_clip), {"TEST_MODE": "true"})
    service = Service(config)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)
        assert sum(p.analysed for p in service.pipelines) == 0
        for expected in (1, 2):
            service.trigger()  # what SIGUSR1 calls (install_signal_handlers)
            deadline = time.monotonic() + 20
            while sum(p.analysed for p in service.pipelines) < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            assert sum(p.analysed for p in service.pipelines) == expected
        assert thread.is_alive()
    finally:
        service.stop_event.set()
        thread.join(10)


def test_layerwatch_test_command(tmp_path: Path, synthetic_clip: Path):
    config = write_config(tmp_path, synthetic_clip)
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "test", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["camera"] == "printer"


def test_finite_replay_ends_the_service(tmp_path: Path, synthetic_clip: Path):
    config = write_config(tmp_path, synthetic_clip, rate_fps=0, loop=False, interval=0)
    proc = start_service(config, {}, "--print-decisions")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sum(1 for line in out.splitlines() if " frame " in line) == 40


def test_two_cameras_each_have_their_own_pipeline(tmp_path: Path, synthetic_clip: Path):
    config = tmp_path / "two.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path}"\nanalysis_interval_s = 0\n'
        f'[[cameras]]\nname = "left"\nsource = {{ type = "replay", path = "{synthetic_clip}" }}\n'
        f'[[cameras]]\nname = "right"\nsource = {{ type = "replay", path = "{synthetic_clip}" }}\n'
    )
    proc = start_service(config, {}, "--print-decisions")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    frames = [line.split()[0] for line in out.splitlines() if " frame " in line]
    assert frames.count("left") == 40 and frames.count("right") == 40


def test_five_errors_in_a_row_back_off_and_say_so(tmp_path: Path, synthetic_clip: Path):
    """As the RTSP+Bedrock detector did: max_consecutive_errors failures pause analysis for
    error_backoff_s and report it in STATUS=; then analysis resumes."""
    import itertools
    import threading

    from appliance.config import load_config
    from appliance.service.runner import Service
    from appliance.service.systemd_notify import SystemdNotifier

    listener = NotifyListener(tmp_path / "notify.sock")
    config = write_config(tmp_path, synthetic_clip, interval=0)
    config.write_text(
        config.read_text().replace(
            "[service]\n", "[service]\nmax_consecutive_errors = 5\nerror_backoff_s = 1.5\n"
        )
    )
    service = Service(
        load_config(config, environ={}), notifier=SystemdNotifier({"NOTIFY_SOCKET": str(listener.path)})
    )
    calls: list[float] = []
    build = service.build

    def build_with_a_broken_detector() -> None:
        build()
        assert service.detector is not None
        real = service.detector.analyse

        def analyse(image, camera=None):
            calls.append(time.monotonic())
            if len(calls) <= 5:
                raise RuntimeError("model exploded")
            return real(image, camera)

        service.detector.analyse = analyse  # type: ignore[method-assign]

    service.build = build_with_a_broken_detector  # type: ignore[method-assign]
    threading.Timer(6.0, service.stop_event.set).start()
    try:
        assert service.run() == 0
        listener.wait_for("5 errors in a row, backing off", timeout=1)
    finally:
        listener.close()
    assert len(calls) > 6  # analysis resumed after the pause
    assert calls[5] - calls[4] >= 1.4  # the pause came after the fifth error
    assert all(b - a < 1.0 for a, b in itertools.pairwise(calls[:5]))  # no pause before it
    assert service.pipelines[0].analysed >= 1


def test_the_readme_demo_runs_and_alerts():
    """The README's first command ends in `layerwatch demo`: the bundled clip, the shipped model."""
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "demo", "--rate", "0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(" frame " in line for line in lines) == 60
    assert any("ALERT" in line for line in lines)


def test_button_long_press_is_false_alarm_during_an_alert_and_test_alarm_otherwise(
    tmp_path: Path, synthetic_clip: Path
):
    from appliance.config.loader import load_config
    from appliance.service.commands import Command, CommandKind
    from appliance.service.runner import Service

    service = Service(load_config(write_config(tmp_path, synthetic_clip), {}))
    service.build()
    press = Command(CommandKind.TEST_ALARM, origin="button")
    assert service.command_handler.rewrite(press) == [press]  # no alert: the test alarm
    pipeline = service.pipelines[0]
    pipeline.engine.alert_active = lambda: True  # type: ignore[method-assign]
    [answer] = service.command_handler.rewrite(press)
    assert (answer.kind, answer.camera, answer.value["label"]) == (CommandKind.ANSWER, pipeline.name, "ok")
    mqtt_test = Command(CommandKind.TEST_ALARM, origin="mqtt")
    # only the button's long press means false alarm
    assert service.command_handler.rewrite(mqtt_test) == [mqtt_test]
    for p in service.pipelines:
        p.source.close()


def test_service_start_runs_no_warm_up_frames(
    tmp_path: Path, synthetic_clip: Path, monkeypatch: pytest.MonkeyPatch
):
    """READY waits for the first real frame, so the service skips the detector's two warm-up runs on a
    black frame (2.0-2.4 s each under qemu-user emulation); the benchmarks and tools keep them."""
    from appliance.config.loader import load_config
    from appliance.config.model import DetectorConfig
    from appliance.detector import load_detector
    from appliance.detector.runtime import EmbeddingBackend
    from appliance.service.runner import Service

    warm_ups: list[tuple[int, int]] = []
    original = EmbeddingBackend.warm_up

    def counting(self: EmbeddingBackend, height: int, width: int, runs: int = 2) -> None:
        warm_ups.append((height, width))
        original(self, height, width, runs)

    monkeypatch.setattr(EmbeddingBackend, "warm_up", counting)
    service = Service(load_config(write_config(tmp_path, synthetic_clip), {}))
    service.build()
    try:
        assert warm_ups == []
        assert len(service.pipelines) == 1
    finally:
        for pipeline in service.pipelines:
            pipeline.source.close()
    load_detector(DetectorConfig())
    assert len(warm_ups) == 1
