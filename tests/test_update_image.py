"""The SD image's update from the boot partition, booted under QEMU TCG (slow, opt-in):

    LAYERWATCH_UPDATE_QEMU=1 .ci/venv/bin/python -m pytest -q tests/test_update_image.py
    LAYERWATCH_UPDATE_QEMU=1 LAYERWATCH_TEST_IMAGE=out/layerwatch-amd64.img ...   (an image built before)

One copy of the amd64 image (built with image-build/build.sh as root, or LAYERWATCH_TEST_IMAGE) boots
three times with image-build/boot-test.sh:

1. the replay demo config on the FAT partition: READY (the version the image was built with); a
   sentinel file is then written into /var/lib/layerwatch and the config's bytes are noted (debugfs on
   the unmounted ext4, nothing mounted);
2. layerwatch-update.tar (scripts/make-update-bundle.sh, "reuse": the project's wheel, version
   0.1.0+update1) on the FAT partition: layerwatch-update.service switches to the new venv before
   layerwatch.service, which is READY and watching; layerwatch-update-confirm.service keeps it; the
   result file on the FAT partition says so; state and config are as they were;
3. a broken update (0.1.0+broken: `layerwatch run` exits 1 at once, check-config passes): the new
   venv is switched in, layerwatch.service fails to start, the confirm unit switches back to
   0.1.0+update1 and restarts it: READY and watching again; the confirm unit is the failed unit that
   says so, and the result file on the FAT partition too.

About 3 boots of 60-120 s each under TCG (plus the build): opt-in, beside tests/test_image_build.py's
boots in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGE_BUILD = REPO / "image-build"
DEMO_CONFIG = IMAGE_BUILD / "steps/30-layerwatch/files/usr/share/layerwatch/layerwatch.demo.toml"
BOOT_TIMEOUT_S = 600
SENTINEL = "/var/lib/layerwatch/update-test-sentinel"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("LAYERWATCH_UPDATE_QEMU") != "1",
        reason="opt-in: LAYERWATCH_UPDATE_QEMU=1 (3 QEMU boots, several minutes)",
    ),
]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("LAYERWATCH_TEST_IMAGE")
    if given:
        return Path(given)
    if os.geteuid() != 0:
        pytest.skip("building the image needs root")
    for tool in ("mmdebstrap", "qemu-system-x86_64", "mcopy", "debugfs", "sfdisk"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing (scripts/test.sh installs the image tools)")
    out = tmp_path_factory.mktemp("image")
    env = {**os.environ, "LAYERWATCH_XZ_LEVEL": "0", "PYTHON": sys.executable}
    proc = subprocess.run([IMAGE_BUILD / "build.sh", "--arch", "amd64", "--out", out], capture_output=True,
                          text=True, timeout=1800, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shutil.rmtree(out / "work-amd64")
    return out / "layerwatch-amd64.img"


def _wheel(tmp: Path, version: str, broken: bool = False) -> Path:
    """The project's wheel from a copy of the checkout, with VERSION (and a `run` that fails at once)."""
    src = tmp / f"src-{version}"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "appliance", src / "appliance", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = src / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text()))
    init = src / "appliance/__init__.py"
    init.write_text(re.sub(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"', init.read_text()))
    if broken:
        cli = src / "appliance/cli.py"
        head = "def cmd_run(args: argparse.Namespace) -> int:\n"
        assert head in cli.read_text()
        cli.write_text(cli.read_text().replace(head, head + "    raise SystemExit('broken on purpose')\n"))
    out = tmp / f"wheel-{version}"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, src],
                   check=True, timeout=600)  # fmt: skip
    return next(out.glob("layerwatch-*.whl"))


def _bundle(tmp: Path, version: str, broken: bool = False) -> tuple[Path, dict[str, Any]]:
    out = tmp / f"bundle-{version}"
    proc = subprocess.run([REPO / "scripts/make-update-bundle.sh", "--wheel", _wheel(tmp, version, broken),
                           "--out", out], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out / "layerwatch-update.tar", json.loads(proc.stdout.strip().splitlines()[-1])


def _partition_offset(image: Path, index: int) -> int:
    table = json.loads(subprocess.run(["sfdisk", "--json", image], capture_output=True, text=True).stdout)
    return int(table["partitiontable"]["partitions"][index]["start"]) * 512


def _debugfs(image: Path, command: str, write: bool = False) -> str:
    args = [
        "debugfs",
        *(["-w"] if write else []),
        "-R",
        command,
        f"{image}?offset={_partition_offset(image, 1)}",
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout


def _put(image: Path, local: Path, name: str) -> None:
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{_partition_offset(image, 0)}", local, "::/" + name],
                   check=True)  # fmt: skip


def _fat_text(image: Path, name: str) -> str:
    proc = subprocess.run(["mtype", "-i", f"{image}@@{_partition_offset(image, 0)}", "::/" + name],
                          capture_output=True, text=True)  # fmt: skip
    return proc.stdout if proc.returncode == 0 else ""


def _boot(image: Path, log: Path) -> tuple[int, dict[str, Any], str]:
    command = [
        str(IMAGE_BUILD / "boot-test.sh"),
        str(image),
        "--timeout",
        str(BOOT_TIMEOUT_S),
        "--log",
        str(log),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT_S + 60)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1])
    print("boot:", json.dumps({k: result.get(k) for k in ("ready_s", "failed_units", "layerwatch_state",
                                                          "power_off_s")}))  # fmt: skip
    return proc.returncode, result, proc.stdout + log.read_text(errors="replace")


def _venv_link(image: Path) -> str:
    stat = _debugfs(image, "stat /opt/layerwatch/venv")
    match = re.search(r'Fast link dest: "([^"]+)"', stat)
    assert match, stat
    return match.group(1)


def test_update_from_the_boot_partition_then_a_broken_one_rolls_back(image: Path, tmp_path: Path):
    copy = tmp_path / image.name
    subprocess.run(["cp", "--sparse=always", image, copy], check=True)
    with copy.open("r+b") as handle:
        handle.truncate(copy.stat().st_size + 512 * 2**20)
    built_with = _venv_link(copy)
    config = tmp_path / "layerwatch.toml"
    config.write_text(DEMO_CONFIG.read_text())
    _put(copy, config, "layerwatch.toml")

    # 1. the image as built: READY
    code, result, out = _boot(copy, tmp_path / "boot1.log")
    assert code == 0 and result["layerwatch_state"] == "watching", out[-4000:]
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("state written before the updates\n")
    _debugfs(copy, f"write {sentinel} {SENTINEL}", write=True)
    state_before = _debugfs(copy, "ls /var/lib/layerwatch")
    config_before = _debugfs(copy, "cat /etc/layerwatch/layerwatch.toml")
    assert "update-test-sentinel" in state_before and "[detector]" in config_before

    # 2. a good update on the FAT partition: the new version READY, state and config kept
    good, figures = _bundle(tmp_path, "0.1.0+update1")
    print("bundle:", json.dumps(figures))
    _put(copy, good, "layerwatch-update.tar")
    code, result, out = _boot(copy, tmp_path / "boot2.log")
    assert code == 0, out[-6000:]
    assert result["layerwatch_state"] == "watching" and result["failed_units"] == []
    assert "layerwatch-update.tar" not in result["boot_partition"]
    assert re.search(
        r"updated to 0\.1\.0\+update1-\S+ \(layerwatch 0\.1\.0\+update1\): layerwatch\.service READY", out
    )
    new = _venv_link(copy)
    assert new.startswith("venvs/0.1.0+update1-") and new != built_with
    assert "READY" in _fat_text(copy, "layerwatch-update.result.txt")
    assert _debugfs(copy, f"cat {SENTINEL}") == sentinel.read_text()
    assert _debugfs(copy, "cat /etc/layerwatch/layerwatch.toml") == config_before
    for name in re.findall(r"\S+", state_before):
        if not name.isdigit() and name not in (".", ".."):
            assert name in _debugfs(copy, "ls /var/lib/layerwatch"), name
    assert built_with.split("/")[-1] in _debugfs(copy, "ls /opt/layerwatch/venvs")  # one back is kept

    # 3. a broken update: it does not reach READY, the confirm unit rolls back to update1, READY again
    broken, _ = _bundle(tmp_path, "0.1.0+broken", broken=True)
    _put(copy, broken, "layerwatch-update.tar")
    code, result, out = _boot(copy, tmp_path / "boot3.log")
    assert result["ready_s"] is not None, out[-6000:]
    assert result["layerwatch_state"] == "watching", result
    assert result["failed_units"] == ["layerwatch-update-confirm.service"], result
    assert "broken on purpose" in out
    assert re.search(r"rolled back to 0\.1\.0\+update1-\S+, which is READY", out), out[-6000:]
    assert _venv_link(copy) == new
    assert "rolled back" in _fat_text(copy, "layerwatch-update.result.txt")
    assert _debugfs(copy, f"cat {SENTINEL}") == sentinel.read_text()
    assert _debugfs(copy, "cat /etc/layerwatch/layerwatch.toml") == config_before
    assert "0.1.0+broken" not in _debugfs(copy, "ls /opt/layerwatch/venvs")
