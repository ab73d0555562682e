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
