"""``layerwatch bench``: the per-frame time on one core and the service's CPU share at default settings are
printed, with the budget they are held to. Short windows here; no timing is asserted, only that the figures
are there and sane (positive, the window as long as asked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from appliance.bench import _cpu_seconds
from appliance.config.model import ServiceConfig

REPO = Path(__file__).resolve().parents[1]


def test_bench_prints_frame_time_cpu_share_and_memory(shipped_model: Path) -> None:
    command = [sys.executable, "-m", "appliance", "bench", "--model", str(shipped_model), "--frames", "20"]
    proc = subprocess.run(
        [*command, "--seconds", "5", "--json"], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    figures = json.loads(lines[-1])
    printed = {line.split()[0] for line in lines[:-1] if line.strip()}
    positive = [
        "pipeline_ms", "analysis_ms", "inference_ms", "peak_rss_mb",
        "service_cpu_s", "service_cpu_share_pct", "default_settings_peak_rss_mb",
    ]  # fmt: skip
    for key in positive:
        assert key in printed and figures[key] > 0, key
    assert figures["service_wall_s"] >= 5
    share = figures["service_cpu_s"] / figures["service_wall_s"] * 100
    assert abs(figures["service_cpu_share_pct"] - share) < 0.01
    assert figures["default_settings_interval_s"] == ServiceConfig().analysis_interval_s
    assert "40 ms" in figures["budget"] and "5 %" in figures["budget"] and "150 MB" in figures["budget"]
    assert isinstance(figures["within_budget"], bool)


def test_cpu_seconds_of_this_process_grow() -> None:
    import os

    before = _cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert _cpu_seconds(os.getpid()) > before >= 0
    assert _cpu_seconds(2**22 + 12345) == 0.0  # no such process
