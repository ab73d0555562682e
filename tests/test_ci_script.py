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


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run_test_sh(tmp_path: Path, uid: int, sudo_works: bool, apt_works: bool):  # type: ignore[no-untyped-def]
    """scripts/test.sh with dpkg-query saying mosquitto and ffmpeg are missing; id, sudo and apt-get stubs
    (apt-get records its calls): nothing on the machine is installed or changed."""
    import os
    import subprocess

    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "apt-calls"
    _stub(
        stubs,
        "dpkg-query",
        'case "$*" in *mosquitto\\ *|*" mosquitto"|*ffmpeg) exit 1;; esac; echo "install ok installed"',
    )
    _stub(stubs, "id", f'[ "$1" = "-u" ] && echo {uid} || exec /usr/bin/id "$@"')
    _stub(stubs, "sudo", 'if [ "$1" = "-n" ]; then shift; fi; ' + ('exec "$@"' if sudo_works else "exit 1"))
    _stub(
        stubs,
        "apt-get",
        f'echo "$*" >> {calls}; case "$*" in *update*) exit 0;; esac; '
        + ("exit 0" if apt_works else "exit 100"),
    )
    _stub(stubs, "systemctl", "exit 0")
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "LAYERWATCH_VENV": str(tmp_path / "venv")}
    env.pop("PY", None)
    proc = subprocess.run(
        [REPO / "scripts" / "test.sh", "--install-only"], capture_output=True, text=True, timeout=60, env=env
    )
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_without_root_or_sudo_one_line_names_the_missing_packages(tmp_path: Path):
    proc, apt = _run_test_sh(tmp_path, uid=1000, sudo_works=False, apt_works=True)
    assert proc.returncode == 1 and apt == []
    [line] = proc.stderr.splitlines()
    assert line == (
        "scripts/test.sh: missing Debian packages: mosquitto ffmpeg; "
        "install them with: sudo apt-get install -y mosquitto ffmpeg"
    )
    assert not (tmp_path / "venv").exists()  # nothing ran


def test_a_package_apt_cannot_install_is_named_before_anything_runs(tmp_path: Path):
    proc, apt = _run_test_sh(tmp_path, uid=0, sudo_works=False, apt_works=False)
    assert proc.returncode == 1
    assert any(
        "install -y -qq --no-install-recommends" in call and "mosquitto ffmpeg" in call for call in apt
    )
    [line] = [text for text in proc.stderr.splitlines() if text.startswith("scripts/test.sh:")]
    assert "apt-get cannot install mosquitto ffmpeg" in line and "apt-get install -y mosquitto ffmpeg" in line
    assert not (tmp_path / "venv").exists()
