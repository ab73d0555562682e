"""image-build/pi_boards.py: the SD card's driver chain of a Pi device tree, against a kernel's files.

The device tree, the kernel image, the initramfs and ``modules.alias`` are made here, small, in the
formats the real ones have (a flattened device tree, a gzip'd kernel image, a cpio archive compressed
with gzip after an uncompressed early one): a Pi-5-like board whose SD host needs a module and a
GPIO-driven regulator. The real boards' figures come from the arm64 image build (its step
55-pi-boards-arm64) and are in image-build/README.md.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pi_boards", REPO / "image-build" / "pi_boards.py")
assert spec is not None and spec.loader is not None
pi_boards = importlib.util.module_from_spec(spec)
sys.modules["pi_boards"] = pi_boards  # its dataclasses look their module up there
spec.loader.exec_module(pi_boards)

VERSION = "7.3.4+deb13-arm64"
RP1 = "/axi/pcie@1000120000/pci@0,0/dev@0,0"
ETHERNET = RP1 + "/pci-ep-bus@1/ethernet@40100000"


def fdt(tree: dict) -> bytes:
    """A flattened device tree (version 17) from {"name": ..., "props": {...}, "children": [...]}."""
    strings = bytearray()
    offsets: dict[str, int] = {}
    body = bytearray()

    def pad() -> None:
        body.extend(b"\0" * (-len(body) % 4))

    def node(n: dict) -> None:
        body.extend(struct.pack(">I", 1) + n["name"].encode() + b"\0")
        pad()
        for key, value in n.get("props", {}).items():
            if isinstance(value, str):
                raw = b"".join(s.encode() + b"\0" for s in value.split("|"))
            elif isinstance(value, list):
                raw = struct.pack(f">{len(value)}I", *value)
            else:
                raw = b""
            if key not in offsets:
                offsets[key] = len(strings)
                strings.extend(key.encode() + b"\0")
            body.extend(struct.pack(">III", 3, len(raw), offsets[key]) + raw)
            pad()
        for child in n.get("children", []):
            node(child)
        body.extend(struct.pack(">I", 2))

    node(tree)
    body.extend(struct.pack(">I", 9))
    header_size, rsv = 40, 16
    off_struct = header_size + rsv
    off_strings = off_struct + len(body)
    total = off_strings + len(strings)
    header = struct.pack(
        ">10I", 0xD00DFEED, total, off_struct, off_strings, header_size, 17, 16, 0, len(strings), len(body)
    )
    return header + b"\0" * rsv + bytes(body) + bytes(strings)


def cpio(names: list[str]) -> bytes:
    out = bytearray()
    for name in [*names, "TRAILER!!!"]:
        raw = name.encode() + b"\0"
        fields = [1, 0o100644, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(raw), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        out.extend(b"\0" * (-len(out) % 4))
    return bytes(out)


def board() -> dict:
    """A Pi-5-like tree: the SD host (a module) with a fixed and a GPIO regulator, the GPIO controller
    (a module), a built-in interrupt controller, and the Wi-Fi's non-removable host (not followed)."""
    return {"name": "", "props": {"compatible": "raspberrypi,5-model-b"}, "children": [
        {"name": "soc@107c000000", "props": {"compatible": "simple-bus"}, "children": [
            {"name": "interrupt-controller@7fff9000", "props": {"compatible": "arm,gic-400", "phandle": [1]}},
            {"name": "gpio@7d517c00", "props": {"compatible": "brcm,bcm7445-gpio|brcm,brcmstb-gpio",
                                                "phandle": [2], "#gpio-cells": [2], "interrupt-parent": [1]}},
            {"name": "intc@7d503000", "props": {"compatible": "brcm,l2-intc", "phandle": [4]}},
            {"name": "mmc@fff000", "props": {"compatible": "brcm,bcm2712-sdhci|brcm,sdhci-brcmstb",
                                             "vmmc-supply": [3], "vqmmc-supply": [5], "interrupt-parent": [4],
                                             "interrupts": [0, 1, 4]}},
            {"name": "mmc@1100000", "props": {"compatible": "brcm,bcm2712-sdhci", "non-removable": None,
                                              "clocks": [99, 1]}},
        ]},
        {"name": "aliases", "props": {"ethernet0": ETHERNET}},
        {"name": "axi", "props": {"compatible": "simple-bus"}, "children": [
            {"name": "pcie@1000120000", "props": {"compatible": "brcm,bcm2712-pcie"}, "children": [
                {"name": "pci@0,0", "children": [
                    {"name": "dev@0,0", "props": {"compatible": "pci1de4,1"}, "children": [
                        {"name": "pci-ep-bus@1", "props": {"compatible": "simple-bus"}, "children": [
                            {"name": "ethernet@40100000", "props": {"compatible": "raspberrypi,rp1-gem"}},
                        ]},
                    ]},
                ]},
            ]},
        ]},
        {"name": "sd-vcc-reg", "props": {"compatible": "regulator-fixed", "phandle": [3]}},
        {"name": "sd-io-1v8-reg", "props": {"compatible": "regulator-gpio", "phandle": [5],
                                            "gpios": [2, 3, 0]}},
    ]}  # fmt: skip


@pytest.fixture()
def card(tmp_path: Path) -> tuple[Path, Path]:
    root, bootfs = tmp_path / "root", tmp_path / "bootfs"
    modules = root / "usr/lib/modules" / VERSION
    modules.mkdir(parents=True)
    bootfs.mkdir()
    (tmp_path / "kernel-version").write_text(VERSION + "\n")
    (modules / "modules.alias").write_text(
        "alias of:N*T*Cbrcm,bcm2712-sdhciC* sdhci_brcmstb\n"
        "alias of:N*T*Cbrcm,brcmstb-gpioC* gpio_brcmstb\n"
        "alias of:N*T*Cregulator-gpioC* gpio_regulator\n"
        "alias pci:v000014E4d* tg3\n"
        "alias pci:v00001DE4d00000001sv*sd*bc*sc*i* rp1_pci\n"
        "alias of:N*T*Craspberrypi,rp1-gemC* macb\n"
    )
    for name in ("mmc/host/sdhci-brcmstb.ko.xz", "gpio/gpio-brcmstb.ko.xz", "regulator/gpio-regulator.ko.xz",
                 "misc/rp1/rp1_pci.ko.xz", "net/ethernet/cadence/macb.ko.xz"):  # fmt: skip
        (modules / "kernel/drivers" / name).parent.mkdir(parents=True, exist_ok=True)
        (modules / "kernel/drivers" / name).write_bytes(b"")
    (bootfs / "vmlinuz").write_bytes(
        gzip.compress(b"\0Linux\0brcm,l2-intc\0regulator-fixed\0brcm,bcm2712-pcie\0")
    )
    (bootfs / "bcm2712-rpi-5-b.dtb").write_bytes(fdt(board()))
    return root, bootfs


def write_initramfs(bootfs: Path, modules: list[str]) -> None:
    inside = [f"usr/lib/modules/{VERSION}/kernel/drivers/{m}" for m in modules]
    (bootfs / "initrd.img").write_bytes(cpio(["kernel", "kernel/firmware"]) + gzip.compress(cpio(inside)))


def test_the_sd_chain_boots_when_every_module_is_in_the_initramfs(card: tuple[Path, Path], tmp_path: Path):
    root, bootfs = card
    write_initramfs(bootfs, ["mmc/host/sdhci-brcmstb.ko.xz", "gpio/gpio-brcmstb.ko.xz",
                             "regulator/gpio-regulator.ko.xz"])  # fmt: skip
    assert pi_boards.main([str(root), str(bootfs), "--json", str(tmp_path / "r.json")]) == 0
    report = pi_boards.json.loads((tmp_path / "r.json").read_text())
    assert report["kernel"] == VERSION and report["boot"] == {"bcm2712-rpi-5-b": True}
    chain = {c["node"]: c for c in report["boards"]["bcm2712-rpi-5-b"]["sd"]["chain"]}
    assert chain["/soc@107c000000/mmc@fff000"]["driver"] == "sdhci_brcmstb"
    assert chain["/soc@107c000000/gpio@7d517c00"]["as"] == "module in the initramfs"
    assert chain["/sd-vcc-reg"]["driver"] == "built in"
    assert chain["/soc@107c000000/intc@7d503000"]["driver"] == "built in"
    assert chain["/soc@107c000000"]["driver"] == "core"
    assert "/soc@107c000000/mmc@1100000" not in chain  # the Wi-Fi's host is not the SD card's
    # the Ethernet behind the RP1 on PCIe: macb, the RP1's PCI driver (by its PCI ids), PCIe built in
    assert report["boards"]["bcm2712-rpi-5-b"]["devices"]["ethernet"] == [
        {"node": ETHERNET, "compatible": ["raspberrypi,rp1-gem"], "missing": []}
    ]


def test_a_missing_rp1_driver_is_listed_but_does_not_stop_the_sd_boot(card: tuple[Path, Path], capsys):
    root, bootfs = card
    alias = root / "usr/lib/modules" / VERSION / "modules.alias"
    alias.write_text(alias.read_text().replace("rp1_pci", "other"))
    write_initramfs(bootfs, ["mmc/host/sdhci-brcmstb.ko.xz", "gpio/gpio-brcmstb.ko.xz",
                             "regulator/gpio-regulator.ko.xz"])  # fmt: skip
    assert pi_boards.main([str(root), str(bootfs)]) == 0
    board = pi_boards.json.loads(capsys.readouterr().out)["boards"]["bcm2712-rpi-5-b"]
    assert board["boots"] and board["devices"]["ethernet"][0]["missing"] == [RP1]


def test_a_module_left_out_of_the_initramfs_fails_the_board(
    card: tuple[Path, Path], capsys: pytest.CaptureFixture
):
    root, bootfs = card
    write_initramfs(bootfs, ["mmc/host/sdhci-brcmstb.ko.xz", "regulator/gpio-regulator.ko.xz"])
    assert pi_boards.main([str(root), str(bootfs)]) == 1
    report = pi_boards.json.loads(capsys.readouterr().out)
    assert report["boards"]["bcm2712-rpi-5-b"]["missing"] == ["/soc@107c000000/gpio@7d517c00"]


def test_a_kernel_without_the_sd_driver_fails_the_board(
    card: tuple[Path, Path], capsys: pytest.CaptureFixture
):
    """Debian trixie's 6.12 on a Pi 5, as measured: the device tree is there, sdhci-brcmstb is not."""
    root, bootfs = card
    alias = root / "usr/lib/modules" / VERSION / "modules.alias"
    alias.write_text("".join(line + "\n" for line in alias.read_text().splitlines() if "sdhci" not in line))
    write_initramfs(bootfs, ["gpio/gpio-brcmstb.ko.xz", "regulator/gpio-regulator.ko.xz"])
    assert pi_boards.main([str(root), str(bootfs)]) == 1
    report = pi_boards.json.loads(capsys.readouterr().out)
    assert report["boards"]["bcm2712-rpi-5-b"]["missing"] == ["/soc@107c000000/mmc@fff000"]
