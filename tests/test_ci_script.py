"""The README's test command (scripts/test.sh) installs what the tests need: the Debian packages the
tests and docs use, into a venv it makes (never the machine's own Python); .ci/run is that command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_SH = REPO / "scripts" / "test.sh"


def debian_packages() -> set[str]:
    script = TEST_SH.read_text()
    lists = re.findall(r"^(?:IMAGE_)?PACKAGES=\((.*?)\)", script, re.DOTALL | re.MULTILINE)
    assert len(lists) == 2
    return {word for block in lists for line in block.splitlines() for word in line.split("#")[0].split()}


def test_ci_runs_the_readme_test_command_in_its_own_venv():
    ci = (REPO / ".ci/run").read_text()
    assert "LAYERWATCH_VENV=.ci/venv exec scripts/test.sh" in ci
    assert "pip install" not in ci and "apt-get" not in ci  # all of it is in the test command
    readme = (REPO / "README.md").read_text()
    assert "```sh\nscripts/test.sh\n```" in readme
    script = TEST_SH.read_text()
    assert 'scripts/install-venv.sh "$VENV" "$EXTRAS"' in script
    installer = (REPO / "scripts" / "install-venv.sh").read_text()
    assert '"$PYTHON" -m venv "$VENV"' in installer
    installs = [line for line in installer.splitlines() if "pip install" in line and "echo" not in line]
    assert installs and all('"$VENV/bin/python" -m pip' in line for line in installs), installs


def test_the_test_command_installs_the_debian_packages_the_tests_and_docs_use():
    packages = debian_packages()
    needed = {"mosquitto", "ffmpeg", "openssl", "gir1.2-gst-rtsp-server-1.0", "python3-gi",
              "gstreamer1.0-plugins-base", "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-bad",
              "gstreamer1.0-tools", "libsystemd-dev", "pkg-config", "systemd", "shellcheck",
              "python3-venv", "python3-pip", "chromium", "chromium-driver"}  # fmt: skip
    assert needed <= packages, needed - packages
    docs = " ".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    if "mosquitto_pub" in docs:
        assert "mosquitto-clients" in packages
