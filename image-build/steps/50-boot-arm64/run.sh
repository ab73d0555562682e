#!/usr/bin/env bash
# The Raspberry Pi boot partition: Debian's raspi-firmware (bootcode.bin, start*.elf, fixup*.dat),
# the Pi device trees of Debian's arm64 kernel (bcm2837-*: Pi 3, Zero 2 W; bcm2711-*: Pi 4, 400,
# CM4), the kernel and initramfs, and config.txt and
# cmdline.txt written here. Written to WORK/bootfs (build.sh makes the FAT file system from it).
set -euo pipefail
ROOT=$1 WORK=$3
BOOTFS=$WORK/bootfs
kernel=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
version=${kernel##*/vmlinuz-}
install -d "$BOOTFS"
cp -r "$ROOT"/usr/lib/raspi-firmware/. "$BOOTFS/"
find "$ROOT/usr/lib/linux-image-$version/broadcom" -name 'bcm2*-rpi-*.dtb' -exec install -m 0644 {} "$BOOTFS/" \;
if [ -d "$ROOT/usr/lib/linux-image-$version/overlays" ]; then
  cp -r "$ROOT/usr/lib/linux-image-$version/overlays" "$BOOTFS/"
fi
install -m 0644 "$kernel" "$BOOTFS/vmlinuz"
install -m 0644 "$ROOT/boot/initrd.img-$version" "$BOOTFS/initrd.img"
cat >"$BOOTFS/config.txt" <<CONFIG
# Layerwatch image (Raspberry Pi 3, 4, 400, CM4, Zero 2 W): Debian's arm64 kernel $version
arm_64bit=1
upstream_kernel=1
kernel=vmlinuz
initramfs initrd.img followkernel
enable_uart=1
disable_overscan=1
camera_auto_detect=0

[pi4]
max_framebuffers=2
CONFIG
echo "console=tty0 console=ttyS1,115200 root=LABEL=lwroot rw rootwait fsck.repair=yes" >"$BOOTFS/cmdline.txt"
echo "$version" >"$WORK/kernel-version"
