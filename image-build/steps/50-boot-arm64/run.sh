#!/usr/bin/env bash
# The Raspberry Pi boot partition: Debian's raspi-firmware (bootcode.bin, start*.elf, fixup*.dat),
# the Pi device trees of Debian's arm64 kernel (bcm2837-*: Pi 3, Zero 2 W; bcm2711-*: Pi 4, 400,
# CM4; bcm2712-*: Pi 5), the kernel and initramfs, and config.txt (one file for Pi 3, 4 and 5:
# [pi3], [pi4], [pi5] sections) and cmdline.txt written here. Written to WORK/bootfs (build.sh makes
# the FAT file system from it).
set -euo pipefail
ROOT=$1 WORK=$3
BOOTFS=$WORK/bootfs
kernel=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
version=${kernel##*/vmlinuz-}
install -d "$BOOTFS"
cp -r "$ROOT"/usr/lib/raspi-firmware/. "$BOOTFS/"
# the device trees: /usr/lib/linux-image-VERSION (trixie's 6.12) or /usr/lib/modules/VERSION/dtb (7.x)
for dtbs in "$ROOT/usr/lib/linux-image-$version" "$ROOT/usr/lib/modules/$version/dtb"; do
  [ -d "$dtbs/broadcom" ] || continue
  find "$dtbs/broadcom" -name 'bcm2*-rpi-*.dtb' -exec install -m 0644 {} "$BOOTFS/" \;
  if [ -d "$dtbs/overlays" ]; then cp -r "$dtbs/overlays" "$BOOTFS/"; fi
done
# the Pi 5's firmware asks for bcm2712d0-rpi-5-b.dtb on D0-stepping boards (2 GB, 16 GB); the
# mainline kernel calls it bcm2712-d-rpi-5-b.dtb
if [ -f "$BOOTFS/bcm2712-d-rpi-5-b.dtb" ]; then cp "$BOOTFS/bcm2712-d-rpi-5-b.dtb" "$BOOTFS/bcm2712d0-rpi-5-b.dtb"; fi
install -m 0644 "$kernel" "$BOOTFS/vmlinuz"
install -m 0644 "$ROOT/boot/initrd.img-$version" "$BOOTFS/initrd.img"
# config.txt: the kernel lines, then the image's own (also in /etc/default/raspi-firmware-custom: on
# the card, a kernel update runs raspi-firmware's hook, which writes config.txt anew with Debian's
# lines for the new kernel and appends that file, so the settings and sections below stay)
custom="$ROOT/etc/default/raspi-firmware-custom"
cat >"$custom" <<CUSTOM
# Layerwatch image: one card for Raspberry Pi 3, 3+, Zero 2 W, 4, 400, CM4 and 5; the firmware reads
# the sections for its board (image-build/steps/50-boot-arm64)
disable_overscan=1
# the camera and display overlays of Raspberry Pi's kernel are not on this card
camera_auto_detect=0
display_auto_detect=0

[pi3]
# Pi 3, 3+ and Zero 2 W: bcm2837-rpi-*.dtb; the serial console is the mini UART (ttyS1)

[pi4]
# Pi 4, 400 and CM4: bcm2711-rpi-*.dtb
max_framebuffers=2

[pi5]
# Pi 5: bcm2712-rpi-5-b.dtb (its EEPROM bootloader reads this file and the kernel itself). The
# build checked that the kernel drives its SD card (layerwatch-arm64.pi-boards.json beside the
# image); not tried on a Pi 5 (image-build/README.md, The Raspberry Pi 5).

[all]
CUSTOM
cat >"$BOOTFS/config.txt" <<CONFIG
# Layerwatch image: Debian's arm64 kernel $version and Debian's raspi-firmware
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz
initramfs initrd.img followkernel

CONFIG
cat "$custom" >>"$BOOTFS/config.txt"
# raspi-firmware's hook ran in the build's chroot too and filled the root's /boot/firmware (the FAT
# partition's mount point: hidden on the card, but space in the image)
find "$ROOT/boot/firmware" -mindepth 1 -delete
echo "console=tty0 console=ttyS1,115200 root=LABEL=lwroot rw rootwait fsck.repair=yes" >"$BOOTFS/cmdline.txt"
echo "$version" >"$WORK/kernel-version"
