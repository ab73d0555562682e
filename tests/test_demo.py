"""`layerwatch demo` as the README shows it: the console's URL on 127.0.0.1, the whole story of the
decision engine (suspect, failure with one ALERT line, acknowledged, cooldown, watching), a summary,
no log lines, and a taken port as one line before anything starts."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_demo(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAYERWATCH_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run(
        [sys.executable, "-m", "appliance", "demo", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )  # fmt: skip


def masked(line: str) -> str:
    """A line with its numbers, alert ids, ports and paths' variable parts masked."""
    line = re.sub(r"\b[0-9a-f]{12}\b", "ID", line)
    # the order the states were first shown in follows the wall clock (the cooldown is in seconds): on a
    # loaded machine it differs; which states were shown is asserted apart
    line = re.sub(r"states shown: .*", "states shown: STATES", line)
    line = re.sub(r"/\S*/(cameras/|api_token)", r"DIR/\1", line)
    return re.sub(r"\d+(\.\d+)?", "N", re.sub(r" +", " ", line))


def readme_block() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Try it") : readme.index("## Run the tests")]
    block = re.search(r"```\n(Layerwatch demo.*?)```", section, re.DOTALL)
    assert block, "no demo output block in the README's Try it section"
    return block.group(1).splitlines()


def assert_shows_readme_lines(stdout: str) -> None:
    """Every line of the README's block, masked, appears in the demo's output in that order."""
    output = [masked(line) for line in stdout.splitlines()]
    at = 0
    for wanted in readme_block():
        if wanted == "...":
            continue
        want = masked(wanted)
        assert want in output[at:], f"README line not printed (after line {at}): {wanted!r}"
        at = output.index(want, at) + 1


def test_the_demo_tells_the_story_and_ends_with_a_summary(tmp_path: Path) -> None:
    port = free_port()
    proc = run_demo(tmp_path, "--rate", "20", "--port", str(port))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert proc.stderr == ""  # no log WARNING (each alert once, no API token warning)
    assert f"console: http://127.0.0.1:{port}/ (this machine only" in out
    assert sum(" frame " in line for line in out.splitlines()) == 60
    alerts = [line for line in out.splitlines() if " ALERT " in line]
    assert alerts and len(alerts) == len(set(alerts))
    for step in (
        "-> suspect",
        "suspect -> failure",
        "acknowledged",
        "failure -> cooldown",
        "cooldown -> watching",
    ):
        assert step in out, step
    summary = re.search(r"summary: 60 frames analysed, (\d+) alert\(s\); states shown: (.*)", out)
    assert summary and int(summary.group(1)) == len(alerts)
    assert {"suspect", "failure", "cooldown", "watching"} <= set(summary.group(2).split(", "))
    evidence = re.search(r"evidence image: (\S+\.jpg)", out)
    assert evidence and Path(evidence.group(1)).is_file()
    assert Path(evidence.group(1)).is_relative_to(tmp_path / "state")
    assert "layerwatch calibrate" in out and "[mqtt]" in out
    assert_shows_readme_lines(out.replace(f":{port}/", ":8080/"))


def test_a_taken_port_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_demo(tmp_path, "--port", str(port), timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_loop_keeps_the_console_up_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LAYERWATCH_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "demo", "--loop", "--rate", "30", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        frames = 0
        for line in proc.stdout:  # past the clip's 60 frames: it plays again
            frames += " frame " in line
            if frames > 75:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert answer.status == 200  # the console's page
    finally:
        proc.send_signal(2)  # Ctrl-C
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "summary: " in out
