"""The arm64 (Raspberry Pi) image, booted under qemu-system-aarch64 TCG: opt-in, because building it
takes about half an hour under qemu-user. Build it, then point the test at it::

    image-build/build.sh --arch arm64 --out /work/out-image/arm64
    LAYERWATCH_TEST_ARM64_IMAGE=/work/out-image/arm64/layerwatch-arm64.img \\
        .ci/venv/bin/python -m pytest tests/test_image_arm64.py -s

Two boots of a copy, with a virtio network card on QEMU's restricted user-mode network
(``boot-test.sh --nic user --checks``); every figure comes from the boot report:

1. the replay demo as layerwatch.toml and a host name on the boot partition: READY, no failed unit,
   ``import picamera2, libcamera`` in the venv (its own numpy), libcamera's pipeline handlers and IPA
   modules, the CSI source through the real picamera2 (no camera in QEMU: its own error), the boot
   partition's example config through ``check-config`` and ``layerwatch test``, ``NAME.local``
   resolved by avahi to the guest's address, ``layerwatch-address.txt`` and ``layerwatch-token.txt``
   on the boot partition;
2. a token the user wrote into ``layerwatch-token.txt`` is the service's after the next boot.

The compressed image (``IMAGE.xz`` beside it, when there) is held to the 450 MB target.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_image_build import IMAGE_BUILD, _boot_partition_offset, _last_json, _variant

DEMO_CONFIG = IMAGE_BUILD / "steps/30-layerwatch/files/usr/share/layerwatch/layerwatch.demo.toml"
BOOT_TIMEOUT_S = 900  # TCG emulating a Cortex-A72 on a shared 2-core host, with the checks
COMPRESSED_TARGET_MB = 450
USER_TOKEN = "my-own-console-token-0123456789"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def arm64_image() -> Path:
    given = os.environ.get("LAYERWATCH_TEST_ARM64_IMAGE")
    if not given:
        pytest.skip(
            "set LAYERWATCH_TEST_ARM64_IMAGE=/path/layerwatch-arm64.img (image-build/build.sh --arch arm64)"
        )
    missing = [tool for tool in ("qemu-system-aarch64", "mcopy", "sfdisk") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"tools missing: {missing} (apt: qemu-system-arm mtools fdisk)")
    image = Path(given)
    assert image.is_file(), image
    return image


def _boot(image: Path) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [IMAGE_BUILD / "boot-test.sh", image, "--arch", "arm64", "--timeout", str(BOOT_TIMEOUT_S),
         "--nic", "user", "--checks"],
        capture_output=True, text=True, timeout=BOOT_TIMEOUT_S + 120,
    )  # fmt: skip
    result = _last_json(proc.stdout)
    print("boot:", json.dumps(result))
    return proc.returncode, result, proc.stdout


def _write_boot_file(image: Path, tmp_path: Path, name: str, text: str) -> None:
    local = tmp_path / name
    local.write_text(text)
    target = f"{image}@@{_boot_partition_offset(image)}"
    subprocess.run(["mcopy", "-o", "-i", target, local, "::/" + name], check=True)


def test_arm64_image_boots_with_the_camera_stack_mdns_and_the_token(arm64_image: Path, tmp_path: Path):
    compressed = arm64_image.with_name(arm64_image.name + ".xz")
    if compressed.is_file():
        compressed_mb = compressed.stat().st_size / 2**20
        print(f"compressed: {compressed_mb:.1f} MB")
        assert compressed_mb <= COMPRESSED_TARGET_MB, compressed_mb
    boards = arm64_image.with_name("layerwatch-arm64.pi-boards.json")  # build.sh: steps/55-pi-boards-arm64
    if boards.is_file():
        report = json.loads(boards.read_text())
        print("Pi boards:", report["kernel"], report["boot"])
        assert report["boot"] and all(report["boot"].values()), report["boot"]
        assert {"bcm2837-rpi-3-b", "bcm2711-rpi-4-b", "bcm2712-rpi-5-b"} <= set(report["boot"])
    image = _variant(
        arm64_image, tmp_path, {"layerwatch.toml": DEMO_CONFIG.read_text(), "hostname": "printer-cam\n"}, 512
    )
    code, result, out = _boot(image)
    assert code == 0, out[-4000:]
    assert result["failed_units"] == []
    assert result["layerwatch_state"] == "watching", result
    print("ready_s:", result["ready_s"], "(target 60 s)")
    checks = result["checks"]
    imported = checks["import_picamera2_libcamera"]
    assert "error" not in imported, imported
    assert imported["numpy_from"].startswith("/opt/layerwatch/venv/"), imported  # the venv's numpy wins
    assert imported["libcamera"].startswith("/opt/layerwatch/venv/"), imported  # through the symlink
    assert "rpi/vc4" in checks["pipeline_handlers"], checks
    assert "ipa_rpi_vc4.so" in checks["ipa_modules"], checks
    assert checks["cameras"] == 0  # QEMU has no camera
    assert checks["csi_source"]["error"] == "SourceUnavailableError", checks["csi_source"]
    example = checks["example"]
    assert example["check_config_rc"] == 0, example
    assert example["test_rc"] == 0, example
    assert json.loads(example["test"][-1])["analysed"] == 1, example
    network = result["network"]
    assert network["mdns_name"] == "printer-cam.local"
    assert network["mdns_ok"], network  # avahi answers printer-cam.local with the guest's address
    assert any(network["addresses"][0] in line for line in network["address_file"]), network
    token = result["token"]
    assert token["state_file"] and token["boot_copy_matches"], token

    # the user replaces the token on the card: the next boot applies it
    _write_boot_file(image, tmp_path, "layerwatch-token.txt", USER_TOKEN + "\r\n")
    code, result, out = _boot(image)
    assert code == 0, out[-4000:]
    assert "API token from the boot partition's layerwatch-token.txt applied" in out
    token = result["token"]
    assert token["sha256_12"] == hashlib.sha256(USER_TOKEN.encode()).hexdigest()[:12], token
    assert token["boot_copy_matches"], token
