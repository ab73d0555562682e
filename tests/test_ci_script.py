""".ci/run installs into a venv it creates (never the machine's own Python) and keeps every Debian
package the tests and docs use."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_installs_python_packages_into_its_own_venv():
    script = (REPO / ".ci/run").read_text()
    assert "python3 -m venv" in script
    installs = [line for line in script.splitlines() if "pip install" in line]
    assert installs and all('"$VENV/bin/python" -m pip' in line for line in installs), installs
    assert 'PY="$VENV/bin/python" scripts/test.sh' in script


def test_ci_installs_the_debian_packages_the_tests_and_docs_use():
    script = (REPO / ".ci/run").read_text()
    apt = re.search(r"apt-get install(.*?)>/dev/null", script, re.DOTALL)
    assert apt is not None
    packages = set(apt.group(1).replace("\\", " ").split())
    needed = {"mosquitto", "ffmpeg", "openssl", "gir1.2-gst-rtsp-server-1.0", "python3-gi",
              "gstreamer1.0-plugins-base", "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-bad",
              "gstreamer1.0-tools", "libsystemd-dev", "pkg-config", "systemd", "shellcheck",
              "python3-venv", "python3-pip", "chromium", "chromium-driver"}  # fmt: skip
    assert needed <= packages, needed - packages
    docs = " ".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    if "mosquitto_pub" in docs:
        assert "mosquitto-clients" in packages
