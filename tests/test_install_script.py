"""scripts/install.sh: shell syntax, shellcheck (when installed), --help, --dry-run, and a real
install into a temporary image root that is idempotent and fully undone by --uninstall."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install.sh"
FETCH = REPO / "scripts" / "get-udevadm-verify.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (
            p.read_text(errors="replace") if p.is_file() and not p.is_symlink() else ""
        )
        for p in sorted(root.rglob("*"))
        if not p.is_dir()
    }


@pytest.mark.parametrize("script", [SCRIPT, FETCH], ids=lambda p: p.name)
def test_bash_syntax(script: Path):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt: shellcheck)"
)
@pytest.mark.parametrize("script", [SCRIPT, FETCH], ids=lambda p: p.name)
def test_shellcheck(script: Path):
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_help():
    proc = _run("--help")
    assert proc.returncode == 0 and "--uninstall" in proc.stdout and "--dry-run" in proc.stdout
    assert _run("--bogus").returncode == 2


def test_dry_run_changes_nothing_and_lists_every_step():
    proc = _run("--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "usermod -G video,gpio layerwatch",  # exactly the device groups it needs
        "python3 -m venv",
        "/etc/systemd/system/layerwatch.service",
        "/etc/systemd/system/layerwatch-fan.service",
        "/etc/udev/rules.d/99-layerwatch.rules",
    ):
        assert expected in out, expected
    uninstall = _run("--dry-run", "--uninstall")
    assert uninstall.returncode == 0
    for removed in ("layerwatch-fan.service", "99-layerwatch.rules", "/opt/layerwatch", "/etc/layerwatch"):
        assert removed in uninstall.stdout, removed


def test_install_into_a_root_is_idempotent_and_uninstall_removes_it(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    first = _run("--root", str(root))
    assert first.returncode == 0, first.stderr
    installed = _tree(root)
    for path in (
        "etc/systemd/system/layerwatch.service",
        "etc/systemd/system/layerwatch-fan.service",
        "etc/udev/rules.d/99-layerwatch.rules",
        "etc/layerwatch/layerwatch.toml",
        "etc/layerwatch/credentials/mqtt_password",
    ):
        assert path in installed, path
    assert (
        installed["etc/systemd/system/layerwatch-fan.service"]
        == (REPO / "systemd" / "layerwatch-fan.service").read_text()
    )
    # the user's edits survive a second run; nothing else changes
    config = root / "etc/layerwatch/layerwatch.toml"
    config.write_text(config.read_text() + "\n# edited\n")
    second = _run("--root", str(root))
    assert second.returncode == 0, second.stderr
    assert "# edited" in config.read_text()
    after = _tree(root)
    after["etc/layerwatch/layerwatch.toml"] = installed["etc/layerwatch/layerwatch.toml"]
    assert after == installed
    # --keep-data keeps config and state, plain --uninstall removes everything
    assert _run("--root", str(root), "--uninstall", "--keep-data").returncode == 0
    assert set(_tree(root)) == {p for p in installed if p.startswith("etc/layerwatch/")}
    assert _run("--root", str(root), "--uninstall").returncode == 0
    assert _tree(root) == {}
