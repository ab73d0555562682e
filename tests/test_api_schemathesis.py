"""Schemathesis against the running service's own /openapi.json (bounded: few examples per operation
and a time budget): no server errors, every status code and header as documented, the token enforced.
The streams (MJPEG, events: they never end) and calibration (it pauses the loop for its frames) are left
out; tests/test_api_service.py covers them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api_harness import TOKEN, api_service

pytestmark = pytest.mark.usefixtures("shipped_model")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.skipif(
    not SCHEMATHESIS.exists() and not shutil.which("schemathesis"), reason="pip install schemathesis"
)
def test_schemathesis_finds_nothing(tmp_path: Path):
    command = str(SCHEMATHESIS) if SCHEMATHESIS.exists() else "schemathesis"
    with api_service(tmp_path, calibrated=False) as service:
        run = subprocess.run(
            [command, "run", service.url + "/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
             "--checks", "all", "--max-examples", "10", "--max-time", "45", "--seed", "17", "-w", "1",
             "--exclude-path-regex", "(stream|events|calibrate)$", "--request-timeout", "10",
             "--report", "junit", "--report-dir", str(tmp_path / "schemathesis")],
            capture_output=True, text=True, timeout=180, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
