#!/usr/bin/env python3
"""Can the image's kernel boot each Raspberry Pi from its SD card? Read from the files, no board needed.

    image-build/pi_boards.py ROOT BOOTFS [--json FILE]

For every board device tree on the boot partition (BOOTFS: bcm2837-rpi-3-b.dtb, bcm2711-rpi-4-b.dtb,
bcm2712-rpi-5-b.dtb, ...) it follows what the kernel needs to mount the root file system on the SD card:
the SD card's host controller (``mmc0``, or the enabled MMC host that is not ``non-removable``), and
everything that node points at
through phandles (clocks, resets, regulators, pin controllers, GPIO controllers, interrupt controllers,
power domains) and their parent buses, transitively. Each node with a ``compatible`` needs a driver
that is either built into the kernel (its compatible string is in the decompressed kernel image) or a
module (``modules.alias`` of ROOT's kernel) that is inside the initramfs (the root is not mounted yet).
The Ethernet (``ethernet0``), the serial console (``serial0``), the USB host controllers and the PCIe
root complex (a Pi 4's USB 3 chip, a Pi 5's RP1: its Ethernet, USB and GPIO header) are checked the
same way, but only need their module in the root, not in the initramfs (``devices``, not ``boots``).

Prints one JSON object (per board: the SD chain with each node's driver, what has none, ``boots``), says on
stderr which boards pass and what each failing one lacks, and exits 1 when a board's SD chain has a
node without a driver, 0 otherwise. The arm64 image build runs it
(steps/55-pi-boards-arm64) so that a kernel that cannot boot a listed board fails the build.

The device tree is parsed here (the flattened-tree format: a header, a structure block of tokens, a
strings block), the initramfs listed from its cpio archives (the compressed one through the host's
zstd, xz or gzip), so the build host needs no dtc and no initramfs-tools.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import json
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FDT_MAGIC = 0xD00DFEED
BEGIN_NODE, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9
#: phandle properties -> the provider's "#...-cells" that says how many argument cells follow each phandle
PHANDLE_LISTS = {
    "clocks": "#clock-cells",
    "resets": "#reset-cells",
    "phys": "#phy-cells",
    "power-domains": "#power-domain-cells",
    "interrupts-extended": "#interrupt-cells",
    "dmas": "#dma-cells",
    "iommus": "#iommu-cells",
    "gpios": "#gpio-cells",
}
#: compatibles that need no driver of their own (the core's bus and description nodes)
CORE = {"simple-bus", "simple-mfd", "syscon", "fixed-clock", "fixed-factor-clock", "arm,gic-400"}
#: a USB device's node (``usb424,ec00``: the Pi 3's Ethernet chip): matched by its USB ids, not the tree
USB_ID = re.compile(r"^usb[0-9a-f]{3,4},[0-9a-f]{3,4}$")
#: a PCI function's node (``pci1de4,1``: the Pi 5's RP1): matched by ``pci:`` aliases; ``pciclass,0604``
#: (a PCIe root port) is the PCI core's
PCI_ID = re.compile(r"^pci([0-9a-f]{1,4}),([0-9a-f]{1,4})$")
#: the boards a Layerwatch card is for (device-tree file stems on the boot partition)
BOARDS = (
    "bcm2837-rpi-3-b", "bcm2837-rpi-3-b-plus", "bcm2837-rpi-3-a-plus", "bcm2837-rpi-zero-2-w",
    "bcm2711-rpi-4-b", "bcm2711-rpi-400", "bcm2711-rpi-cm4-io", "bcm2712-rpi-5-b", "bcm2712-d-rpi-5-b",
)  # fmt: skip


@dataclass
class Node:
    path: str
    parent: Node | None
    props: dict[str, bytes] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)

    def strings(self, name: str) -> list[str]:
        raw = self.props.get(name, b"")
        return [s.decode(errors="replace") for s in raw.split(b"\0") if s]

    def cells(self, name: str) -> list[int]:
        raw = self.props.get(name, b"")
        return list(struct.unpack(f">{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))

    @property
    def compatible(self) -> list[str]:
        return self.strings("compatible")

    @property
    def enabled(self) -> bool:
        return self.strings("status")[:1] in ([], ["okay"], ["ok"])


def parse_fdt(blob: bytes) -> dict[str, Node]:
    """Every node of a flattened device tree by its path ("/", "/soc/mmc@7e300000", ...)."""
    magic, _size, off_struct, off_strings = struct.unpack(">4I", blob[:16])
    if magic != FDT_MAGIC:
        raise ValueError("not a flattened device tree")
    nodes: dict[str, Node] = {}
    stack: list[Node] = []
    pos = off_struct
    while True:
        (token,) = struct.unpack(">I", blob[pos : pos + 4])
        pos += 4
        if token == BEGIN_NODE:
            end = blob.index(b"\0", pos)
            name = blob[pos:end].decode()
            pos = (end + 4) & ~3
            parent = stack[-1] if stack else None
            path = "/" if parent is None else (parent.path.rstrip("/") + "/" + name)
            node = Node(path, parent)
            if parent is not None:
                parent.children.append(node)
            nodes[path] = node
            stack.append(node)
        elif token == END_NODE:
            stack.pop()
        elif token == PROP:
            length, nameoff = struct.unpack(">II", blob[pos : pos + 8])
            pos += 8
            name_end = blob.index(b"\0", off_strings + nameoff)
            stack[-1].props[blob[off_strings + nameoff : name_end].decode()] = blob[pos : pos + length]
            pos = (pos + length + 3) & ~3
        elif token == NOP:
            continue
        elif token == END:
            return nodes
        else:
            raise ValueError(f"bad device-tree token {token} at {pos - 4}")


class Tree:
    def __init__(self, blob: bytes):
        self.nodes = parse_fdt(blob)
        self.by_phandle = {}
        for node in self.nodes.values():
            for key in ("phandle", "linux,phandle"):
                if key in node.props:
                    self.by_phandle[node.cells(key)[0]] = node
        self.aliases = {
            k: v.rstrip(b"\0").decode() for k, v in self.nodes.get("/aliases", Node("/", None)).props.items()
        }

    def alias(self, name: str) -> Node | None:
        path = self.aliases.get(name)
        return self.nodes.get(path) if path else None

    def sd_host(self) -> Node | None:
        """The SD card's (or a CM4's eMMC's) host controller: ``mmc0`` when aliased, else the enabled MMC
        host that is not ``non-removable`` (on a Pi 3 and 4 the other one carries the Wi-Fi chip)."""
        for name in ("mmc0", "mmc1"):
            node = self.alias(name)
            if node is not None and node.enabled and "non-removable" not in node.props:
                return node
        for node in self.nodes.values():
            name = node.path.rsplit("/", 1)[-1]
            if name.startswith(("mmc@", "sdhci@")) and node.enabled and "non-removable" not in node.props:
                return node
        return None

    def references(self, node: Node) -> list[Node]:
        """The nodes ``node`` points at through phandles (providers, with their argument cells skipped)."""
        found: list[Node] = []
        for name in node.props:
            if name.endswith("-supply") or (name.startswith("pinctrl-") and name[8:].isdigit()):
                found += [self.by_phandle[p] for p in node.cells(name) if p in self.by_phandle]
            elif name == "interrupt-parent":
                found += [self.by_phandle[p] for p in node.cells(name)[:1] if p in self.by_phandle]
            elif name in PHANDLE_LISTS or name.endswith("-gpios") or name.endswith("-gpio"):
                cells_name = PHANDLE_LISTS.get(name, "#gpio-cells")
                values, i = node.cells(name), 0
                while i < len(values):
                    provider = self.by_phandle.get(values[i])
                    if provider is None:
                        break
                    found.append(provider)
                    count = provider.cells(cells_name)
                    i += 1 + (count[0] if count else 0)
        return found

    def interrupt_parent(self, node: Node) -> Node | None:
        current: Node | None = node
        while current is not None:
            if "interrupt-parent" in current.props:
                return self.by_phandle.get(current.cells("interrupt-parent")[0])
            current = current.parent
        return None

    def chain(self, start: Node, follow: Callable[[Node], bool] = lambda node: True) -> list[Node]:
        """``start`` and every node it needs first: phandle providers (a pin or regulator configuration's
        provider is its nearest ancestor with a ``compatible``), interrupt parents and parent buses; the
        references of a node are followed only when ``follow(node)`` (not those of a built-in driver:
        the Pi 3/4 clock manager names the display PLLs as optional inputs)."""
        seen: dict[str, Node] = {}
        todo = [start]
        while todo:
            node = todo.pop()
            while node.parent is not None and not node.compatible:  # a config node -> its device
                node = node.parent
            if node.path in seen or node.parent is None:
                continue
            seen[node.path] = node
            if node.parent.parent is not None:  # the bus it sits on, always (a Pi 5's RP1 on PCIe)
                todo.append(node.parent)
            if not follow(node):
                continue
            todo += self.references(node)
            if "interrupts" in node.props and (parent := self.interrupt_parent(node)) is not None:
                todo.append(parent)
        return list(seen.values())


@dataclass
class Kernel:
    """What ROOT's kernel can drive: module aliases, the modules in the initramfs, built-in strings."""

    version: str
    aliases: list[tuple[str, str]]  # (pattern, module): of: and pci: aliases
    initramfs_modules: set[str]
    root_modules: set[str]
    builtin_strings: set[bytes]

    def driver(self, node: Node, need_initramfs: bool) -> dict[str, str] | None:
        modalias = "of:N{}T{}C{}".format(
            node.path.rsplit("/", 1)[-1].split("@")[0],
            node.strings("device_type")[0] if node.strings("device_type") else "(null)",
            "C".join(node.compatible) + "C" if node.compatible else "",
        )
        for compatible in node.compatible:
            if compatible in CORE:
                return {"compatible": compatible, "driver": "core"}
        if node.compatible and all(USB_ID.match(c) for c in node.compatible):
            return {"compatible": node.compatible[0], "driver": "a USB device (matched by its USB ids)"}
        if node.compatible and all(c.startswith("pciclass,") for c in node.compatible):
            return {"compatible": node.compatible[0], "driver": "core"}
        pci = next((m for c in node.compatible if (m := PCI_ID.match(c))), None)
        if pci is not None:
            modalias = f"pci:v{int(pci[1], 16):08X}d{int(pci[2], 16):08X}sv*sd*bc*sc*i*"
        for pattern, module in self.aliases:
            if fnmatch.fnmatchcase(modalias, pattern):
                where = self.initramfs_modules if need_initramfs else self.root_modules
                if module in where:
                    return {"driver": module, "as": "module in the initramfs" if need_initramfs else "module"}
        for compatible in node.compatible:
            if compatible.encode() in self.builtin_strings:
                return {"compatible": compatible, "driver": "built in"}
        return None


def module_name(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    name = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", name)
    return name.replace("-", "_")


def cpio_names(data: bytes) -> tuple[list[str], int]:
    """The member names of the newc cpio archives at the start of ``data`` and where they end."""
    names, pos = [], 0
    while data[pos : pos + 6] in (b"070701", b"070702"):
        namesize = int(data[pos + 94 : pos + 102], 16)
        filesize = int(data[pos + 54 : pos + 62], 16)
        name = data[pos + 110 : pos + 110 + namesize - 1].decode(errors="replace")
        pos = (pos + 110 + namesize + 3) & ~3
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            while pos < len(data) and data[pos] == 0:
                pos += 1
            continue
        names.append(name)
    return names, pos


def initramfs_listing(path: Path) -> list[str]:
    data = path.read_bytes()
    names, pos = cpio_names(data)  # early (uncompressed) archives: microcode, firmware
    rest = data[pos:]
    tools = {b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zX": "xz", b"\x1f\x8b": "gzip"}
    for magic, tool in tools.items():
        if rest.startswith(magic):
            rest = subprocess.run([tool, "-dc"], input=rest, capture_output=True, check=True).stdout
            break
    return names + cpio_names(rest)[0]


def load_kernel(root: Path, bootfs: Path) -> Kernel:
    named = bootfs.parent / "kernel-version"  # the build's WORK/kernel-version (steps/50-boot-arm64)
    version = named.read_text().strip() if named.exists() else ""
    modules = root / "usr/lib/modules"
    modules_dir = modules / version if version else next(modules.iterdir())
    version = modules_dir.name
    aliases = []
    for line in (modules_dir / "modules.alias").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias" and parts[1].startswith(("of:", "pci:v0")):
            aliases.append((parts[1], parts[2].replace("-", "_")))
    root_modules = {module_name(p.name) for p in modules_dir.rglob("*.ko*")}
    initramfs = {module_name(n) for n in initramfs_listing(bootfs / "initrd.img") if ".ko" in n}
    raw = (bootfs / "vmlinuz").read_bytes()
    image = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    builtin = set(image.split(b"\0"))
    return Kernel(version, aliases, initramfs, root_modules, builtin)


def check_board(tree: Tree, kernel: Kernel) -> dict[str, object]:
    report: dict[str, object] = {}
    sd = tree.sd_host()
    if sd is None:
        return {"boots": False, "missing": ["no enabled SD card host in the device tree"]}
    missing = []
    chain: list[dict[str, object]] = []

    def needs_more(node: Node) -> bool:
        driver = kernel.driver(node, need_initramfs=True)
        return driver is None or driver.get("driver") not in ("built in", "core")

    for node in tree.chain(sd, needs_more):
        driver = kernel.driver(node, need_initramfs=True)
        chain.append({"node": node.path, "compatible": node.compatible[:2], **(driver or {"driver": None})})
        if driver is None:
            missing.append(node.path)
    report["sd"] = {"node": sd.path, "compatible": sd.compatible, "chain": chain}
    report["missing"] = missing
    report["boots"] = not missing
    others: dict[str, list[dict[str, object]]] = {}
    usb = [
        n for n in tree.nodes.values()
        if n.enabled and any(("usb" in c or "dwc" in c) and not USB_ID.match(c) for c in n.compatible)
    ]  # fmt: skip
    pcie = [n for n in tree.nodes.values() if n.enabled and any("-pcie" in c for c in n.compatible)]
    listed = [("ethernet", tree.alias("ethernet0")), ("serial", tree.alias("serial0"))]
    listed += [("usb", n) for n in usb] + [("pcie", n) for n in pcie]
    for label, device in listed:
        if device is None or not device.enabled:
            continue
        node = device

        def follows(n: Node) -> bool:
            found = kernel.driver(n, need_initramfs=False)
            return found is None or found.get("driver") not in ("built in", "core")

        lacking = [
            n.path for n in tree.chain(node, follows) if kernel.driver(n, need_initramfs=False) is None
        ]
        others.setdefault(label, []).append(
            {"node": node.path, "compatible": node.compatible[:2], "missing": lacking}
        )
    report["devices"] = others
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the image root (its /usr/lib/modules)")
    parser.add_argument("bootfs", type=Path, help="the boot partition's files (vmlinuz, initrd.img, *.dtb)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    kernel = load_kernel(args.root, args.bootfs)
    boards: dict[str, dict[str, object]] = {}
    for stem in BOARDS:
        dtb = args.bootfs / f"{stem}.dtb"
        if dtb.is_file():
            boards[stem] = check_board(Tree(dtb.read_bytes()), kernel)
    boot = {name: bool(board["boots"]) for name, board in boards.items()}
    result = {
        "kernel": kernel.version,
        "initramfs_modules": len(kernel.initramfs_modules),
        "boards": boards,
        "boot": boot,
    }
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    for name, board in boards.items():  # the verdict in words, on stderr (the build's log)
        if not board["boots"]:
            lacking = board["missing"]
            print(
                f"{name} cannot mount its root with kernel {kernel.version}: no driver for {lacking}",
                file=sys.stderr,
            )
    passed = [name for name, ok in boot.items() if ok]
    print(
        f"Pi boards with an SD driver chain in {kernel.version}: {', '.join(passed) or 'none'}",
        file=sys.stderr,
    )
    return 0 if boards and all(boot.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
