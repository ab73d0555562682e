"""layerwatch-fan.service as installed: its own unit (independent of the detector), Type=notify with a
watchdog, restart on failure, least privilege; exposure score. (`systemd-analyze verify` of every
unit runs in tests/test_systemd_units.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "layerwatch-fan.service"
MAIN = REPO / "systemd" / "layerwatch.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _keys(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def test_fan_unit_stands_alone_and_is_supervised():
    keys = _keys(UNIT)
    assert keys["Type"] == ["notify"] and keys["WatchdogSec"] and keys["Restart"] == ["on-failure"]
    assert keys["ExecStart"][0].endswith("layerwatch fan --config /etc/layerwatch/layerwatch.toml")
    assert "layerwatch.service" not in "".join(keys.get("Requires", []) + keys.get("BindsTo", [])), (
        "the fan must not stop when the detector does"
    )
    # at boot it starts after the detector (ordering only: Wants/Requires would tie them together)
    assert keys["After"] == ["layerwatch.service"] and "Wants" not in keys
    assert keys["SupplementaryGroups"] == ["gpio"], "no video access for the fan"
    assert keys["PrivateNetwork"] == ["yes"] and keys["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert keys["RuntimeDirectory"] == ["layerwatch"]  # /run/layerwatch/fan.json
    assert "ProtectKernelTunables" not in keys, "the Jetson pwm-fan node under /sys must stay writable"


def test_main_unit_releases_the_relay_after_any_stop():
    keys = _keys(MAIN)
    assert any("appliance.hardware.relay --release" in v for v in keys["ExecStopPost"])
    assert keys["SupplementaryGroups"] == ["video gpio"]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(("unit", "limit"), [(UNIT, 1.5), (MAIN, 2.5)], ids=["fan", "main"])
def test_security_exposure(unit: Path, limit: float):
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert match, proc.stdout[-500:]
    assert float(match.group(1)) <= limit
