"""``layerwatch bench``: where a frame's time goes, and what the service costs, on this machine.

The budget it checks (``within_budget``, issue 31): at most 40 ms per analysed frame on one core
(``pipeline_ms``), at most 5 % of one core for the service at default settings over a minute
(``service_cpu_share_pct``), peak resident memory at most 150 MB as a user runs it
(``default_settings_peak_rss_mb``).

Three measurements; the first two pinned to one CPU core:

1. In process, over the bundled clip: per-frame milliseconds of decode (video -> BGR), preprocess
   (resize + colour), inference (the backend) and decision (prototype scoring + decision engine);
   ``pipeline_fps`` = 1000 / their sum.
2. A real ``layerwatch run`` child process on the looping clip with ``NOTIFY_SOCKET`` set:
   ``ready_s`` = seconds from spawn to ``READY=1`` (first analysed frame), ``service_fps`` = frames
   analysed per second after that, ``peak_rss_mb`` = the child's peak resident memory (its
   ``VmHWM``, sampled every 0.1 s: ``ru_maxrss`` would include this process's memory). It is started
   twice: the first start with a fresh state directory (``first_start_*``), the later one with the
   backend choice it remembered (``backend.json``).
3. The service at default settings (:func:`default_settings_figures`): a real ``layerwatch run`` child
   on the looping clip with the default analysis interval (``service.analysis_interval_s``, one frame
   every 2 s), decision and detector settings, the HTTP API on (as installed) and a fresh state
   directory, for ``--seconds`` (default 60) after ``READY=1``: ``service_cpu_s`` = the child's CPU
   seconds in that window (``utime + stime`` of ``/proc/<pid>/stat``, all its threads, any core),
   ``service_wall_s`` the window, ``service_cpu_share_pct`` = ``service_cpu_s / service_wall_s x 100``
   (percent of one core). The replay source decodes only the frames that are analysed; a real camera
   stream (RTSP, USB) also decodes the frames in between.

``--config FILE`` or ``--rtsp URL`` [``--mqtt URL``] measure the configuration a user runs instead
of the demo (:func:`user_figures`): ``layerwatch run`` on that config for ``--seconds`` after
``READY=1``, then SIGTERM; ``peak_rss_mb`` is its peak resident memory (``VmHWM``) and ``rss_mb``
its resident memory at the end. With ``--rtsp`` the state directory is a fresh temporary one and
the service is started twice (``first_start_*``: the start with an empty state directory); with
``--config`` the config's own state directory is used, so stop the running service first (two
services on one broker take each other's MQTT client id). ``cpu_share_pct`` is its CPU share over
the window, as above.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from appliance.config.model import DecisionConfig, DetectorConfig, ServiceConfig
from appliance.decision import DecisionEngine
from appliance.demo import DEMO_CLIP
from appliance.detector.base import verdict_for
from appliance.detector.prototype_detector import load_detector, to_model_input


def _pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _decoded_frames(count: int) -> tuple[list[np.ndarray], float]:
    import cv2

    frames: list[np.ndarray] = []
    spent = 0.0
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    while len(frames) < count:
        start = time.perf_counter()
        ok, frame = capture.read()
        spent += time.perf_counter() - start
        if not ok:
            capture.release()
            capture = cv2.VideoCapture(str(DEMO_CLIP))
            continue
        frames.append(frame)
    capture.release()
    return frames, spent * 1000 / count


def stage_times(model: Path | None, count: int) -> dict[str, float | str]:
    frames, decode_ms = _decoded_frames(count)
    detector = load_detector(DetectorConfig(model=model, threads=1))
    engine = DecisionEngine("bench", DecisionConfig())
    scoring = detector.default_scoring
    pre = inf = dec = 0.0
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        rgb = to_model_input(frame, detector.input_size)
        t1 = time.perf_counter()
        embedding, patches = detector.backend.embed(rgb)
        t2 = time.perf_counter()
        features, _ = detector.features(embedding, patches)
        score = detector.score(features, scoring)
        verdict = verdict_for(score, scoring.threshold, scoring.band)
        engine.observe(verdict.value == "failure", score, float(i))
        t3 = time.perf_counter()
        pre, inf, dec = pre + t1 - t0, inf + t2 - t1, dec + t3 - t2
    per = {
        k: v * 1000 / count for k, v in (("preprocess_ms", pre), ("inference_ms", inf), ("decision_ms", dec))
    }
    total = decode_ms + sum(per.values())
    return {
        "backend": detector.backend_name,
        "input_size": f"{detector.input_size[0]}x{detector.input_size[1]}",
        "decode_ms": round(decode_ms, 3),
        **{k: round(v, 3) for k, v in per.items()},
        "analysis_ms": round(sum(per.values()), 3),
        "pipeline_ms": round(total, 3),
        "pipeline_fps": round(1000 / total, 1),
    }


def _vm_hwm_kb(pid: int) -> int:
    """The process's own peak resident memory (``VmHWM``, kB). Unlike ``ru_maxrss`` it is reset at
    exec, so it does not include the parent's memory at fork time."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _start_and_watch(config: Path, frames: int, sock: socket.socket) -> dict[str, float]:
    """One ``layerwatch run`` child: seconds to READY=1, frames/s after it, peak RSS (its own)."""
    env = {**os.environ, "NOTIFY_SOCKET": sock.getsockname(), "OMP_NUM_THREADS": "1"}
    for name in ("RTSP_URL", "MQTT_BROKER_URL", "TEST_MODE"):
        env.pop(name, None)
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config), "--max-frames", str(frames)],
        env=env,
        preexec_fn=_pin_to_one_core,
    )
    ready_at: list[float] = []
    peak_kb = [0]

    def drain() -> None:  # read every message, as systemd does, so the child never waits on us
        sock.settimeout(0.1)
        while child.poll() is None or not ready_at:
            peak_kb[0] = max(peak_kb[0], _vm_hwm_kb(child.pid))
            try:
                if b"READY=1" in sock.recv(4096) and not ready_at:
                    ready_at.append(time.monotonic())
            except TimeoutError:
                if time.monotonic() - start > 300:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    child.wait()
    ended = time.monotonic()
    reader.join(timeout=2)
    if child.returncode != 0 or not ready_at:
        raise RuntimeError(f"layerwatch run exited {child.returncode} (ready: {bool(ready_at)})")
    return {
        "ready_s": round(ready_at[0] - start, 3),
        "service_fps": round((frames - 1) / max(ended - ready_at[0], 1e-6), 1),
        "peak_rss_mb": round(peak_kb[0] / 1024, 1),
    }


def service_figures(model: Path | None, frames: int, api: bool = True) -> dict[str, float]:
    """Start ``layerwatch run`` on the looping clip twice with one state directory: the first start
    times the model's backends and keeps the choice, the second is how every later boot starts.
    ``api``: with the HTTP API and web console on (on 127.0.0.1, a free port), as installed."""
    with tempfile.TemporaryDirectory(prefix="layerwatch-bench-") as tmp:
        config = Path(tmp) / "bench.toml"
        model_line = f'model = "{model}"\n' if model else ""
        config.write_text(
            f'[service]\nstate_dir = "{tmp}"\nanalysis_interval_s = 0\nlog_level = "error"\n'
            f"[detector]\n{model_line}threads = 1\n"
            f'[[cameras]]\nname = "bench"\n[cameras.source]\ntype = "replay"\npath = "{DEMO_CLIP}"\n'
            "rate_fps = 0\nloop = true\n"
            "[cameras.decision]\nverify_interval_s = 0\n"
            f'[api]\nenabled = {"true" if api else "false"}\nlisten = "127.0.0.1:0"\n'
        )
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(Path(tmp) / "notify.sock"))
            first = _start_and_watch(config, frames, sock)
            steady = _start_and_watch(config, frames, sock)
    return {
        **steady,
        "first_start_ready_s": first["ready_s"],
        "first_start_peak_rss_mb": first["peak_rss_mb"],
    }


#: the budget of issue 31: per analysed frame on one core, the service's share of one core at default
#: settings, its peak resident memory
BUDGET_FRAME_MS = 40.0
BUDGET_CPU_SHARE_PCT = 5.0
BUDGET_PEAK_RSS_MB = 150.0


def default_settings_figures(model: Path | None, seconds: float, api: bool = True) -> dict[str, float | str]:
    """``layerwatch run`` on the looping clip at default settings for ``seconds`` after ``READY=1``: its
    CPU share of one core over that window and its peak resident memory (module docstring, item 3)."""
    with (
        tempfile.TemporaryDirectory(prefix="layerwatch-bench-") as tmp,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        config = Path(tmp) / "default.toml"
        model_line = f'[detector]\nmodel = "{model}"\n' if model else ""
        config.write_text(
            f'[service]\nstate_dir = "{tmp}"\nlog_level = "error"\n{model_line}'
            f'[[cameras]]\nname = "bench"\n[cameras.source]\ntype = "replay"\npath = "{DEMO_CLIP}"\n'
            "loop = true\n"
            f'[api]\nenabled = {"true" if api else "false"}\nlisten = "127.0.0.1:0"\n'
        )
        sock.bind(str(Path(tmp) / "notify.sock"))
        # the environment must not move a default (ANALYSIS_INTERVAL is service.analysis_interval_s)
        run = _run_for(
            config, seconds, sock, unset=("ANALYSIS_INTERVAL", "VERBOSE_LOGGING", "LAYERWATCH_STATE_DIR")
        )
    return {
        "default_settings_interval_s": ServiceConfig().analysis_interval_s,
        "service_cpu_s": run["cpu_s"],
        "service_wall_s": run["wall_s"],
        "service_cpu_share_pct": run["cpu_share_pct"],
        "default_settings_peak_rss_mb": run["peak_rss_mb"],
    }


def within_budget(figures: dict[str, float | str]) -> bool:
    """The per-frame time, the CPU share and the peak RSS at default settings all within the budget."""
    return (
        float(figures["pipeline_ms"]) <= BUDGET_FRAME_MS
        and float(figures["service_cpu_share_pct"]) <= BUDGET_CPU_SHARE_PCT
        and float(figures["default_settings_peak_rss_mb"]) <= BUDGET_PEAK_RSS_MB
    )


def run_bench(
    model: Path | None, frames: int, api: bool = True, seconds: float = 60.0
) -> dict[str, float | str | bool]:
    """Every figure of the module docstring; ``seconds``: the default-settings window after READY."""
    _pin_to_one_core()
    figures: dict[str, float | str] = {"cpu": _cpu_name(), "cores_used": 1, "api": "on" if api else "off"}
    figures.update(stage_times(model, frames))
    figures.update(service_figures(model, frames, api))
    figures.update(default_settings_figures(model, seconds, api))
    budget = (
        f"<= {BUDGET_FRAME_MS:g} ms per frame on one core, <= {BUDGET_CPU_SHARE_PCT:g} % of one core at "
        f"default settings, peak RSS <= {BUDGET_PEAK_RSS_MB:g} MB"
    )
    return {**figures, "budget": budget, "within_budget": within_budget(figures)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _cpu_seconds(pid: int) -> float:
    """CPU seconds the process has used so far, all its threads (``utime + stime`` of
    ``/proc/<pid>/stat``, in clock ticks); 0 if it is gone."""
    try:
        # the fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _run_for(
    config: Path, seconds: float, sock: socket.socket, unset: tuple[str, ...] = ()
) -> dict[str, float | str]:
    """One ``layerwatch run --config CONFIG`` child for ``seconds`` after ``READY=1`` (at most 120 s
    to get there), then SIGTERM: seconds to READY, peak and final resident memory, last STATUS, and
    its CPU seconds, wall seconds and CPU share (% of one core) from READY to the end of the window.
    ``unset``: more environment variables the child must not see."""
    env = {**os.environ, "NOTIFY_SOCKET": sock.getsockname()}
    for name in ("RTSP_URL", "MQTT_BROKER_URL", "TEST_MODE", *unset):
        env.pop(name, None)
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready_at: float | None = None
    status = ""
    peak_kb = rss_kb = 0
    cpu_at_ready = cpu_at_end = wall_s = 0.0  # the child's CPU seconds at READY and when last seen
    sock.settimeout(0.1)
    try:
        while child.poll() is None:
            now = time.monotonic()
            if ready_at is None and now - start > 120:
                break
            if ready_at is not None:
                cpu_at_end, wall_s = _cpu_seconds(child.pid) or cpu_at_end, now - ready_at
                if wall_s >= seconds:
                    break
            peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
            rss_kb = _vm_kb(child.pid, "VmRSS:") or rss_kb
            try:
                message = sock.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            if "READY=1" in message and ready_at is None:
                cpu_at_ready, ready_at = _cpu_seconds(child.pid), time.monotonic()
            for line in message.splitlines():
                if line.startswith("STATUS="):
                    status = line[len("STATUS=") :]
    finally:
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
    if ready_at is None:
        raise RuntimeError(f"layerwatch run exited {child.returncode} or never sent READY=1")
    cpu_s = max(cpu_at_end - cpu_at_ready, 0.0)
    return {
        "ready_s": round(ready_at - start, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rss_mb": round(rss_kb / 1024, 1),
        "status": status,
        "cpu_s": round(cpu_s, 3),
        "wall_s": round(wall_s, 3),
        "cpu_share_pct": round(cpu_s / wall_s * 100, 3) if wall_s > 0 else 0.0,
    }


def _vm_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rtsp_config(folder: Path, rtsp: str, mqtt: str | None) -> Path:
    """A config as the README's RTSP + MQTT setup has it, with its state in ``folder``."""
    config = folder / "layerwatch.toml"
    text = f'[service]\nstate_dir = "{folder}"\nlog_level = "warning"\n'
    if mqtt:
        text += f'[mqtt]\nbroker_url = "{mqtt}"\ndevice_id = "layerwatch-bench"\n'
    text += f'[[cameras]]\nname = "bench"\n[cameras.source]\ntype = "rtsp"\nurl = "{rtsp}"\n'
    config.write_text(text)
    return config


def user_figures(
    config: Path | None, rtsp: str | None, mqtt: str | None, seconds: float
) -> dict[str, float | str]:
    """Figures of ``layerwatch run`` on the user's config (``config``) or on an RTSP camera (and MQTT
    broker) with a fresh state directory: first start, then a later start."""
    figures: dict[str, float | str] = {"cpu": _cpu_name(), "seconds": seconds}
    with (
        tempfile.TemporaryDirectory(prefix="layerwatch-bench-") as tmp,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.bind(str(Path(tmp) / "notify.sock"))
        if config is not None:
            figures["config"] = str(config)
            figures.update(_run_for(config, seconds, sock))
            return figures
        assert rtsp is not None
        made = rtsp_config(Path(tmp), rtsp, mqtt)
        figures["mqtt"] = "on" if mqtt else "off"
        first = _run_for(made, seconds, sock)
        figures.update(_run_for(made, seconds, sock))
    figures["first_start_ready_s"] = first["ready_s"]
    figures["first_start_peak_rss_mb"] = first["peak_rss_mb"]
    return figures
