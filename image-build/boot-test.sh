#!/usr/bin/env bash
# Boot a Layerwatch image under QEMU (TCG, no network) with the image's own kernel and initramfs
# (read from its FAT boot partition with mtools, nothing mounted) and read the serial console:
#
#   image-build/boot-test.sh IMAGE [--arch amd64|arm64] [--firmware kernel|bios|uefi] [--log FILE]
#                                  [--timeout S] [--nic none|user] [--checks]
#
# --firmware kernel (default) hands QEMU the kernel and initramfs directly; amd64 images can also
# boot through their own boot loader: bios (SeaBIOS -> the MBR code -> SYSLINUX) or uefi (OVMF,
# package ovmf -> systemd-boot). Then the loader's entry on the FAT partition gets the report's
# kernel arguments (edited in place with mtools).
# The image boots with layerwatch.boot_report on the kernel command line, so
# layerwatch-boot-report.service prints its report to the console and powers off. The last line of
# output is one JSON object: ready_s (power-on to layerwatch.service READY, null without READY),
# default_target_s, failed_units, layerwatch_state (watching, config_error, unconfigured, ...),
# n_restarts, the boot partition's files and more. Exit 0 only when READY came and no unit failed.
# --nic user gives the guest a virtio network card on QEMU's user-mode network with restrict=on (the
# guest reaches nothing outside QEMU): the report then says the guest's address, what mDNS
# (avahi-resolve NAME.local) answers and the boot partition's layerwatch-address.txt. --checks adds
# layerwatch.boot_checks: `import picamera2, libcamera` in the venv, libcamera's pipeline handlers
# and IPA modules, the CSI source through picamera2, and the boot partition's example config through
# `layerwatch check-config` and `layerwatch test` (after READY; the figures stay the boot's).
# The first boot changes IMAGE (settings applied, root grown): boot a copy to keep the original.
set -euo pipefail

IMAGE=""
ARCH=""
LOG=""
TIMEOUT=${LAYERWATCH_BOOT_TIMEOUT:-300}
FIRMWARE=kernel
NIC=none
CHECKS=""
OVMF=${OVMF:-/usr/share/ovmf/OVMF.fd}
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:?}; shift ;;
    --log) LOG=${2:?}; shift ;;
    --firmware) FIRMWARE=${2:?}; shift ;;
    --timeout) TIMEOUT=${2:?}; shift ;;
    --nic) NIC=${2:?}; shift ;;
    --checks) CHECKS=" layerwatch.boot_checks" ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "boot-test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) IMAGE=$1 ;;
  esac
  shift
done
[ -f "$IMAGE" ] || { echo "boot-test.sh: IMAGE is required (a .img file)" >&2; exit 2; }
if [ -z "$ARCH" ]; then
  case "$IMAGE" in *arm64*) ARCH=arm64 ;; *) ARCH=amd64 ;; esac
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOG=${LOG:-$WORK/console.log}
: >"$LOG"

# the kernel and initramfs from the boot partition (partition 1), read in place with mtools
start=$(sfdisk --dump "$IMAGE" | awk -F'[=,]' '/^[^ ]*1 *:/ { gsub(/ /, "", $2); print $2 }')
offset=$((start * 512))
report_args="panic=-1 layerwatch.boot_report=$((TIMEOUT / 2))$CHECKS"
append="root=LABEL=lwroot rw rootwait $report_args"

# the boot loader's own entry, with the report's arguments added: $1 the file on the FAT partition,
# $2 the sed expression that appends them
loader_entry() {
  mcopy -n -i "$IMAGE@@$offset" "::$1" "$WORK/entry"
  sed -i "$2" "$WORK/entry"
  mcopy -o -i "$IMAGE@@$offset" "$WORK/entry" "::$1"
}
case "$ARCH/$FIRMWARE" in
  amd64/kernel)
    qemu=(qemu-system-x86_64 -M q35 -cpu max -append "$append console=ttyS0,115200") ;;
  arm64/kernel)
    qemu=(qemu-system-aarch64 -M virt -cpu cortex-a72 -append "$append console=ttyAMA0") ;;
  amd64/bios)
    loader_entry /syslinux/syslinux.cfg "s|^\(  APPEND .*\)$|\1 $report_args|"
    qemu=(qemu-system-x86_64 -M q35 -cpu max) ;;
  amd64/uefi)
    [ -f "$OVMF" ] || { echo "boot-test.sh: --firmware uefi needs OVMF ($OVMF; package ovmf)" >&2; exit 2; }
    loader_entry /loader/entries/layerwatch.conf "s|^\(options .*\)$|\1 $report_args|"
    qemu=(qemu-system-x86_64 -M q35 -cpu max -bios "$OVMF") ;;
  *) echo "boot-test.sh: --arch amd64|arm64, --firmware kernel|bios|uefi (bios and uefi: amd64)" >&2; exit 2 ;;
esac
if [ "$FIRMWARE" = kernel ]; then
  mcopy -n -i "$IMAGE@@$offset" ::/vmlinuz "$WORK/vmlinuz"
  mcopy -n -i "$IMAGE@@$offset" ::/initrd.img "$WORK/initrd.img"
  qemu+=(-kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img")
fi
case "$NIC" in
  none) nic=(-nic none) ;;
  # restrict=on: the guest talks to QEMU's DHCP server and nothing else (no host, no LAN, no internet)
  user) nic=(-nic "user,restrict=on,model=virtio-net-pci") ;;
  *) echo "boot-test.sh: --nic none|user" >&2; exit 2 ;;
esac
qemu+=(-accel tcg -smp 2 -m 1024
  -drive "file=$IMAGE,format=raw,if=virtio,cache=unsafe" -serial "file:$LOG" -display none
  -monitor none "${nic[@]}" -no-reboot)

t0=$(date +%s.%N)
"${qemu[@]}" &
pid=$!
seen=""
while kill -0 "$pid" 2>/dev/null; do
  if [ -z "$seen" ] && grep -aq 'LAYERWATCH-REPORT {' "$LOG"; then
    seen=$(date +%s.%N)
  fi
  if (($(date +%s) - ${t0%.*} > TIMEOUT)); then
    echo "boot-test.sh: no power-off within $TIMEOUT s" >&2
    kill "$pid"
    break
  fi
  sleep 0.2
done
wait "$pid" || true
[ -n "$seen" ] || seen=$(date +%s.%N)
sed -n '/LAYERWATCH-JOURNAL-BEGIN/,/LAYERWATCH-CHAIN-END/p' "$LOG" | tr -d '\r'

python3 - "$LOG" "$t0" "$seen" <<'PY'
import json, sys

log, t0, seen = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lines = open(log, errors="replace").read().replace("\r", "").splitlines()
# the report can share its line with the serial getty's login prompt
reports = [line.split("LAYERWATCH-REPORT ", 1)[1] for line in lines if "LAYERWATCH-REPORT {" in line]
if not reports:
    print(json.dumps({"ready_s": None, "default_target_s": None, "failed_units": None,
                      "layerwatch_state": None, "error": "no report on the console",
                      "console_tail": lines[-30:]}))
    sys.exit(1)
report = json.loads(reports[-1])
# guest CLOCK_MONOTONIC -> seconds since QEMU started (power-on): the offset is when the host saw
# the report line minus the guest time it was printed at (0.2 s polling)
offset = (seen - t0) - report["now_s"]
def since_power_on(mono):
    return None if mono is None else round(mono + offset, 1)
result = {
    "ready_s": since_power_on(report["ready_mono_s"]),
    "default_target_s": since_power_on(report["default_target_mono_s"]),
    "failed_units": report["failed_units"],
    "layerwatch_state": report["layerwatch_state"],
    "n_restarts": int(report["unit"].get("NRestarts") or 0),
    "exit_status": report["unit"].get("ExecMainStatus", ""),
    "status_light": report.get("status_light", {}),
    "status_text": report["unit"].get("StatusText", ""),
    "boot_partition": report["boot_partition"],
    "etc_layerwatch": report["etc_layerwatch"],
    "hostname": report["hostname"],
    "root_fs_mb": report["root_fs_mb"],
    "network": report.get("network"),
    "token": report.get("token"),
    "checks": report.get("checks"),
    "power_off_s": round(float(__import__("time").time()) - t0, 1),
}
print(json.dumps(result))
sys.exit(0 if result["ready_s"] is not None and not result["failed_units"] else 1)
PY
