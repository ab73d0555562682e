"""image-build/: the scripts are shellcheck-clean, and (slow, as root) the amd64 image is built once
with ``build.sh`` and booted three ways with ``boot-test.sh`` under QEMU TCG, each on a copy whose
FAT boot partition was written with mtools (no mounts):

- the replay demo config as layerwatch.toml, a credential and a host name on the boot partition: they
  are moved off it, the root partition grows, layerwatch.service is READY and watching, no unit failed;
  with a network card on QEMU's restricted user-mode network, avahi answers NAME.local with the
  guest's address, which is also in the boot partition's layerwatch-address.txt, and the console's
  API token is copied to its layerwatch-token.txt;
- an invalid layerwatch.toml, booted through the BIOS path (SeaBIOS, MBR code, SYSLINUX): the journal
  names the key, the state is config_error, the status light unit runs, no restart loop;
- nothing on the boot partition, booted through the UEFI path (OVMF, systemd-boot): the safe
  "unconfigured" state with its status light code, no unit failed.

``LAYERWATCH_TEST_IMAGE=/path/layerwatch-amd64.img`` boots an image built before instead of building.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.shell_checks import assert_shell_script_clean

REPO = Path(__file__).resolve().parents[1]
IMAGE_BUILD = REPO / "image-build"
SCRIPTS = sorted(
    [
        *IMAGE_BUILD.glob("*.sh"),
        *IMAGE_BUILD.glob("steps/*/run.sh"),
        *IMAGE_BUILD.glob("steps/*/files/usr/lib/layerwatch-image/*.sh"),
        *IMAGE_BUILD.glob("steps/*/files/etc/kernel/postinst.d/*"),
    ]
)
DEMO_CONFIG = IMAGE_BUILD / "steps/30-layerwatch/files/usr/share/layerwatch/layerwatch.demo.toml"
BUILD_TIMEOUT_S = 1500
BOOT_TIMEOUT_S = 600  # under TCG; a loaded 2-core machine took 290 s to power-off
TOOLS = (
    "mmdebstrap", "qemu-system-x86_64", "mcopy", "mkfs.vfat", "sfdisk", "mkfs.ext4", "xz", "syslinux",
    "bmaptool",
)  # fmt: skip


def test_image_build_scripts_found():
    names = {p.name for p in SCRIPTS}
    assert {"build.sh", "boot-test.sh", "run-steps.sh", "bootconfig.sh"} <= names, names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(IMAGE_BUILD)))
def test_image_script_syntax_and_shellcheck(script: Path):
    assert_shell_script_clean(script)


def test_build_help_and_bad_arguments():
    build = IMAGE_BUILD / "build.sh"
    assert "--arch" in subprocess.run([build, "--help"], capture_output=True, text=True).stdout
    assert subprocess.run([build, "--arch", "i386", "--out", "/tmp/x"], capture_output=True).returncode == 2
    assert subprocess.run([IMAGE_BUILD / "boot-test.sh"], capture_output=True).returncode == 2


def _last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.fixture(scope="module")
def amd64_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("LAYERWATCH_TEST_IMAGE")
    if given:
        return Path(given)
    if os.geteuid() != 0:
        pytest.skip("building the image needs root")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"image tools missing (apt, see scripts/test.sh): {missing}")
    out = tmp_path_factory.mktemp("image")
    # xz -0: the test checks that compression works, not how small it gets; the python running the
    # tests has pip (it downloads the wheels)
    env = {**os.environ, "LAYERWATCH_XZ_LEVEL": "0", "PYTHON": sys.executable}
    proc = subprocess.run(
        [IMAGE_BUILD / "build.sh", "--arch", "amd64", "--out", out],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = _last_json(proc.stdout)
    print("build:", json.dumps(figures))
    assert figures["arch"] == "amd64" and figures["raw_mb"] > 0 and figures["compressed_mb"] > 0
    image = out / "layerwatch-amd64.img"
    assert image.is_file() and (out / "layerwatch-amd64.img.xz").is_file()
    # the block map flashes it: bmaptool writes the mapped blocks and checks each range's SHA-256
    bmap = out / "layerwatch-amd64.img.bmap"
    assert bmap.is_file() and 0 < figures["mapped_mb"] < figures["raw_mb"], figures
    flashed = out / "flashed.img"
    copy = ["bmaptool", "copy", "--bmap", bmap, image, flashed]
    copied = subprocess.run(copy, capture_output=True, text=True, timeout=300)
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert flashed.stat().st_size == image.stat().st_size
    flashed.unlink()
    shutil.rmtree(out / "work-amd64")  # the root file system copy: the tests read the image only
    return image


def _boot_partition_offset(image: Path) -> int:
    table = json.loads(subprocess.run(["sfdisk", "--json", image], capture_output=True, text=True).stdout)
    return int(table["partitiontable"]["partitions"][0]["start"]) * 512


def _variant(image: Path, tmp_path: Path, files: dict[str, str], grow_mb: int = 0) -> Path:
    """A copy of IMAGE with FILES (path on the boot partition -> text) written into its FAT."""
    copy = tmp_path / image.name
    subprocess.run(["cp", "--sparse=always", image, copy], check=True)
    if grow_mb:
        with copy.open("r+b") as handle:
            handle.truncate(copy.stat().st_size + grow_mb * 2**20)
    target = f"{copy}@@{_boot_partition_offset(copy)}"
    for name, text in files.items():
        local = tmp_path / "put" / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
        if "/" in name:
            subprocess.run(["mmd", "-D", "s", "-i", target, "::/" + name.rsplit("/", 1)[0]], check=False)
        subprocess.run(["mcopy", "-o", "-i", target, local, "::/" + name], check=True)
    return copy


def _boot(image: Path, firmware: str = "kernel", nic: str = "none") -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [IMAGE_BUILD / "boot-test.sh", image, "--timeout", str(BOOT_TIMEOUT_S), "--firmware", firmware,
         "--nic", nic],
        capture_output=True, text=True, timeout=BOOT_TIMEOUT_S + 60,
    )  # fmt: skip
    result = _last_json(proc.stdout)
    print("boot:", json.dumps(result))
    return proc.returncode, result, proc.stdout


@pytest.mark.slow
def test_boot_with_the_replay_config_on_the_boot_partition(amd64_image: Path, tmp_path: Path):
    image = _variant(
        amd64_image,
        tmp_path,
        {
            "layerwatch.toml": DEMO_CONFIG.read_text(),
            "credentials/mqtt_password": "not-on-the-card-any-more\n",
            "hostname": "printer-cam\n",
        },
        grow_mb=512,
    )
    size_before_mb = image.stat().st_size // 2**20
    code, result, out = _boot(image, nic="user")
    assert code == 0, out[-4000:]
    assert result["failed_units"] == []
    assert result["layerwatch_state"] == "watching", result
    assert result["n_restarts"] == 0
    assert result["ready_s"] > 0  # the figure itself is reported, not judged (speed is a benchmark)
    # moved off the FAT partition, into /etc/layerwatch
    for name in ("layerwatch.toml", "credentials", "hostname"):
        assert name not in result["boot_partition"], result["boot_partition"]
    assert "layerwatch.toml" in result["etc_layerwatch"]
    assert result["hostname"] == "printer-cam"
    assert "credential mqtt_password moved" in out
    # the root partition grew into the extra 512 MB
    assert result["root_fs_mb"] > size_before_mb - 256 - 512 + 300, result["root_fs_mb"]
    # found on the LAN: printer-cam.local (avahi) and layerwatch-address.txt on the boot partition
    network = result["network"]
    assert network["mdns_name"] == "printer-cam.local" and network["mdns_ok"], network
    assert any(network["addresses"][0] in line for line in network["address_file"]), network
    # the console's token, readable on the computer that flashed the card
    assert result["token"]["state_file"] and result["token"]["boot_copy_matches"], result["token"]
    assert "layerwatch-token.txt" in result["boot_partition"]


@pytest.mark.slow
def test_boot_with_an_invalid_config_names_the_key_and_does_not_loop(amd64_image: Path, tmp_path: Path):
    bad = "[service]\nanalysis_interval_s = -1\n"
    # through the BIOS boot path: SeaBIOS, the image's MBR code, SYSLINUX
    code, result, out = _boot(_variant(amd64_image, tmp_path, {"layerwatch.toml": bad}), firmware="bios")
    assert code != 0
    assert result["layerwatch_state"] == "config_error", result
    assert result["ready_s"] is None
    # `layerwatch run` checked the file, named the key and exited 78 once: no boot or restart loop
    assert result["n_restarts"] == 0
    assert result["exit_status"] == "78", result
    assert "service.analysis_interval_s" in out  # the key path, in the journal
    assert "layerwatch.toml" not in result["boot_partition"]
    assert result["failed_units"] == ["layerwatch.service"]  # the honest state: `systemctl --failed`
    # the LED code unit ran (QEMU has no LED: it says so in the journal and ends)
    assert "status light: config_error: 3 flashes" in out
    light = result["status_light"]["layerwatch-status-light@config_error.service"]
    assert light["Result"] == "success", light


@pytest.mark.slow
def test_boot_without_a_config_is_unconfigured_and_safe(amd64_image: Path, tmp_path: Path):
    # through the UEFI boot path: OVMF, the removable-media loader EFI/BOOT/BOOTX64.EFI (systemd-boot)
    code, result, out = _boot(_variant(amd64_image, tmp_path, {}), firmware="uefi")
    assert code != 0  # no READY: nothing is watched
    assert result["layerwatch_state"] == "unconfigured", result
    assert result["failed_units"] == []
    assert "unconfigured: no layerwatch.toml" in out
    assert "status light: unconfigured: 2 flashes" in out


def test_ci_installs_the_image_tools():
    script = (REPO / "scripts" / "test.sh").read_text()
    tools = ("mmdebstrap", "qemu-system-x86", "mtools", "dosfstools", "fdisk", "e2fsprogs", "xz-utils",
             "syslinux", "syslinux-common", "ovmf")  # fmt: skip
    for package in tools:
        assert f" {package}" in script, package


def test_install_script_builds_the_venv_inside_an_image_root_from_wheels(tmp_path: Path):
    script = REPO / "scripts" / "install.sh"
    alone = subprocess.run([script, "--wheels", tmp_path], capture_output=True, text=True, timeout=30)
    assert alone.returncode == 2 and "--wheels needs --root" in alone.stderr
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    proc = subprocess.run(
        [script, "--dry-run", "--root", root, "--wheels", tmp_path / "wheels",
         "--constraints", IMAGE_BUILD / "constraints.txt"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"useradd --root {root} --system" in out
    assert f"chroot {root} python3 -m venv /opt/layerwatch/venv" in out
    assert "--no-index" in out and "-c /tmp/layerwatch-wheels/constraints.txt" in out
