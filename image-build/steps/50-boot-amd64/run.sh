#!/usr/bin/env bash
# The amd64 boot partition, for UEFI and BIOS firmware alike: systemd-boot as the removable-media
# loader EFI/BOOT/BOOTX64.EFI with one loader entry (UEFI), syslinux.cfg for SYSLINUX (BIOS; the
# boot sector, ldlinux.sys and the MBR code are written by make-image.sh with the host's syslinux,
# on the unmounted file system), the kernel and initramfs beside them. Written to WORK/bootfs
# (build.sh makes the FAT file system from it); the root's /boot/firmware stays an empty mount point.
set -euo pipefail
ROOT=$1 WORK=$3
BOOTFS=$WORK/bootfs
kernel=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
version=${kernel##*/vmlinuz-}
install -d "$BOOTFS/EFI/BOOT" "$BOOTFS/loader/entries"
install -m 0644 "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$BOOTFS/EFI/BOOT/BOOTX64.EFI"
install -m 0644 "$kernel" "$BOOTFS/vmlinuz"
install -m 0644 "$ROOT/boot/initrd.img-$version" "$BOOTFS/initrd.img"
printf 'default layerwatch.conf\ntimeout 0\n' >"$BOOTFS/loader/loader.conf"
cat >"$BOOTFS/loader/entries/layerwatch.conf" <<ENTRY
title   Layerwatch (Debian $version)
linux   /vmlinuz
initrd  /initrd.img
options root=LABEL=lwroot rw rootwait console=tty0 console=ttyS0,115200
ENTRY
install -d "$BOOTFS/syslinux"
cat >"$BOOTFS/syslinux/syslinux.cfg" <<CFG
# Layerwatch (Debian $version), BIOS boot; the UEFI entry is loader/entries/layerwatch.conf
DEFAULT layerwatch
PROMPT 0
TIMEOUT 0
LABEL layerwatch
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=lwroot rw rootwait console=tty0 console=ttyS0,115200
CFG
echo "$version" >"$WORK/kernel-version"
