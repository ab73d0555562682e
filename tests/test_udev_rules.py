"""udev/*.rules as they will be installed: `udevadm verify` (systemd >= 254, fetched from Debian
bookworm-backports and unpacked by scripts/get-udevadm-verify.sh) and what the rules must grant."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RULES = sorted((REPO / "udev").glob("*.rules"))


@functools.cache
def udevadm_with_verify() -> str | None:
    """The udevadm the fetch script provides (cached between runs), or None if it cannot."""
    try:
        proc = subprocess.run(
            [str(REPO / "scripts" / "get-udevadm-verify.sh")], capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None
    udevadm_with_verify.reason = proc.stderr.strip()[-300:]  # type: ignore[attr-defined]
    return path


@pytest.fixture(scope="module")
def udevadm() -> str:
    path = udevadm_with_verify()
    if path is None:
        reason = getattr(udevadm_with_verify, "reason", "")
        pytest.skip(
            f"no udevadm with 'verify' (systemd >= 254): scripts/get-udevadm-verify.sh failed: {reason}"
        )
    return path


def _verify(udevadm: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [udevadm, "verify", "--resolve-names=never", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("rules", RULES, ids=[r.name for r in RULES])
def test_udevadm_verify(udevadm: str, rules: Path):
    proc = _verify(udevadm, rules)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Fail:    0" in proc.stdout and proc.stderr.strip() == "", proc.stderr


def test_udevadm_verify_catches_a_broken_rule(udevadm: str, tmp_path: Path):
    """The checker is real: a comparison used as an assignment is refused."""
    broken = tmp_path / "broken.rules"
    broken.write_text('SUBSYSTEM="gpio", GROUP=="gpio"\n')
    assert _verify(udevadm, broken).returncode != 0


def test_rules_grant_the_service_groups_its_devices():
    text = "\n".join(r.read_text() for r in RULES)
    rules = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def granted(pattern: str, group: str) -> bool:
        # GROUP="gpio" for device nodes, chgrp gpio for sysfs attributes
        return any(re.search(pattern, line) and re.search(rf'GROUP="{group}"|chgrp (-R )?{group} ', line)
                   for line in rules)  # fmt: skip

    assert granted(r'KERNEL=="gpiochip\*"', "gpio")
    assert granted(r'SUBSYSTEM=="pwm"', "gpio")
    assert granted(r'KERNEL=="pwm-fan"', "gpio") and any("target_pwm" in line for line in rules)
    assert granted(r'SUBSYSTEM=="video4linux"', "video")
    assert granted(r'KERNEL=="vchiq"', "video")
    assert any('SYMLINK+="layerwatch-cam"' in line for line in rules), "the camera's stable name"
    assert not any('MODE="0666"' in line or 'MODE="0777"' in line for line in rules), "no world access"
