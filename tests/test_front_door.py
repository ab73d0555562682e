"""The README's two commands in a fresh clone, as far as this machine allows: `scripts/demo.sh` installs
Layerwatch into a new venv once (one progress line, no setuptools warning wall) and ends with its summary;
`scripts/test.sh --install-only` (the test command's install step) adds the test extras to that same venv
once; after it, neither command installs anything again (the demo's venv and the test venv do not fight).

The clone's venv is its own (LAYERWATCH_VENV in a temporary folder); pip takes the wheels from its cache
where it can (about 25 s for the demo's install, 100 s for the test extras on this machine). The test
command's pytest step is not run here: that would be the whole suite again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - started
    assert proc.returncode == 0, (
        f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout + proc.stderr, took


def test_the_readme_commands_in_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    venv = tmp_path / "venv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PY", "LAYERWATCH_"))},
        "LAYERWATCH_VENV": str(venv),
        "LAYERWATCH_STATE_DIR": str(tmp_path / "demo-state"),
    }
    demo = ["scripts/demo.sh", "--rate", "0", "--port", "0"]

    out, first = run(demo, clone, env, timeout=600)
    assert f"installing Layerwatch (.) into {venv}" in out
    assert re.search(r"installed in \d+ s", out)
    assert "Editable installation" not in out and "BuildBackendWarning" not in out  # in the pip log only
    assert "Editable installation" in (venv / "pip-install.log").read_text()
    assert "summary: 60 frames analysed" in out and "evidence image: " in out and "next: " in out
    assert str(tmp_path / "demo-state") in out

    out, again = run(demo, clone, env, timeout=120)
    assert "installing" not in out and "summary: 60 frames analysed" in out
    assert again < first

    out, _ = run(["scripts/test.sh", "--install-only"], clone, env, timeout=900)
    assert "installing Layerwatch (.[cloud,dev,litert,systemd,train])" in out
    assert (venv / ".layerwatch-install").read_text().split()[1] == "cloud,dev,litert,systemd,train"
    check = "import ruff, mypy, pytest, xdist, appliance; print(appliance.__file__)"
    tools = subprocess.run(
        [venv / "bin" / "python", "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert tools.returncode == 0 and tools.stdout.strip().startswith(str(clone)), tools.stderr

    out, took = run(["scripts/test.sh", "--install-only"], clone, env, timeout=120)
    assert "installing" not in out and took < 30  # idempotent: nothing installed again
    out, _ = run(demo, clone, env, timeout=120)
    assert "installing" not in out  # the demo after the test command: the same venv, nothing to do

    # pyproject.toml changed: the next command installs again
    pyproject = clone / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# changed\n")
    out, _ = run(demo, clone, env, timeout=600)
    assert "installing Layerwatch" in out
