#!/usr/bin/env bash
# The base system: mount point of the boot partition, no root password (login only with an SSH key),
# multi-user.target as the default (no desktop).
set -euo pipefail
ROOT=$1
install -d "$ROOT/boot/firmware"
chroot "$ROOT" passwd --lock root >/dev/null
systemctl --root="$ROOT" --quiet set-default multi-user.target
# no interactive first-boot questions on the console (locale, time zone, root password)
systemctl --root="$ROOT" --quiet mask systemd-firstboot.service
# e2scrub checks ext4 file systems on LVM snapshots: the card has no LVM, and its boot-time reaper cost
# 5.7 s of CPU beside layerwatch.service's start under emulation
systemctl --root="$ROOT" --quiet mask e2scrub_reap.service e2scrub_all.timer
