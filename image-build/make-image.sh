#!/usr/bin/env bash
# Make the partitioned image from a root directory and a boot directory, without loop devices or
# mounts (build.sh's last step; also handy to re-pack a changed root):
#
#   make-image.sh ROOTFS BOOTFS IMAGE
#
# MBR with a FAT32 boot partition (label LWBOOT, 256 MiB, type c: the Pi firmware reads it, UEFI
# firmware too) from BOOTFS via mkfs.vfat -C + mcopy, and an ext4 root (label lwroot) from ROOTFS
# via mkfs.ext4 -d, sized to the content plus 30 % and 200 MiB (the first boot grows it to fill the
# card); both made as files and written into place with dd conv=notrunc. When BOOTFS has
# syslinux/syslinux.cfg (amd64), the FAT file system gets SYSLINUX's boot sector and ldlinux.sys
# (`syslinux --install`, which works on the unmounted file through mtools) and the image's first
# 440 bytes SYSLINUX's MBR code, which starts the partition marked bootable: BIOS boot.
set -euo pipefail
ROOTFS=${1:?ROOTFS} BOOTFS=${2:?BOOTFS} IMAGE=${3:?IMAGE}
BOOT_MB=256
used_mb=$(du -sm "$ROOTFS" | cut -f1)
ROOT_MB=$((used_mb * 13 / 10 + 200))
tmp=$(mktemp -d "$(dirname "$IMAGE")/make-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -f "$IMAGE" "$IMAGE.xz"
truncate -s $((1 + BOOT_MB + ROOT_MB))M "$IMAGE"
sfdisk --quiet "$IMAGE" <<PARTITIONS
label: dos
unit: sectors
start=2048, size=$((BOOT_MB * 2048)), type=c, bootable
start=$(((1 + BOOT_MB) * 2048)), type=83
PARTITIONS
mkfs.vfat -C -F 32 -n LWBOOT "$tmp/boot.vfat" $((BOOT_MB * 1024)) >/dev/null
mcopy -s -i "$tmp/boot.vfat" "$BOOTFS"/* ::/
# the card's example (a USB webcam; image-build/layerwatch.toml.example), in CRLF for Windows' editors
example=$(dirname "$0")/layerwatch.toml.example
if [ -f "$example" ] && [ -d "$ROOTFS/opt/layerwatch" ]; then
  sed 's/$/\r/' "$example" >"$tmp/layerwatch.toml.example"
  mcopy -i "$tmp/boot.vfat" "$tmp/layerwatch.toml.example" ::/layerwatch.toml.example
fi
if [ -f "$BOOTFS/syslinux/syslinux.cfg" ]; then
  mbr=${SYSLINUX_MBR:-/usr/lib/syslinux/mbr/mbr.bin}
  if ! command -v syslinux >/dev/null || [ ! -f "$mbr" ]; then
    echo "make-image.sh: BIOS boot needs the host's syslinux and syslinux-common (apt-get install syslinux syslinux-common)" >&2
    exit 1
  fi
  syslinux --install --directory /syslinux "$tmp/boot.vfat"
  dd if="$mbr" of="$IMAGE" bs=440 count=1 conv=notrunc status=none
fi
mkfs.ext4 -q -F -L lwroot -d "$ROOTFS" "$tmp/root.ext4" "${ROOT_MB}M" >/dev/null
dd if="$tmp/boot.vfat" of="$IMAGE" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$tmp/root.ext4" of="$IMAGE" bs=1M seek=$((1 + BOOT_MB)) conv=notrunc,sparse status=none
