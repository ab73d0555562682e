"""The unit files as they will be installed: systemd-analyze verify (nothing on stderr) and security."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted((REPO / "systemd").glob("*.service"))
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def image_root(tmp_path: Path) -> Path:
    """A root with the system's own units (for default dependencies) and the installed binaries."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if candidate.is_dir():
            shutil.copytree(candidate, root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
            break
    binaries = set()
    for unit in UNITS:
        binaries.update(re.findall(r"^Exec\w*=[-@+!]*(\S+)", unit.read_text(), re.MULTILINE))
    for binary in binaries:
        path = root / binary.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    return root


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_verify_passes_with_nothing_on_stderr(unit: Path, tmp_path: Path):
    root = image_root(tmp_path)
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", str(root / "etc/systemd/system" / unit.name)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


def test_main_service_is_type_notify_with_watchdog():
    text = (REPO / "systemd" / "layerwatch.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=layerwatch",
                 "LoadCredential=", "User=layerwatch", "RestartPreventExitStatus=78"):  # fmt: skip
        assert line in text


def test_security_exposure_is_low():
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(REPO / "systemd" / "layerwatch.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert match, proc.stdout[-500:]
    assert float(match.group(1)) <= 2.5
