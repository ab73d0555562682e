#!/usr/bin/env bash
# The base system: mount point of the boot partition, no root password (login only with an SSH key).
set -euo pipefail
ROOT=$1
install -d "$ROOT/boot/firmware"
chroot "$ROOT" passwd --lock root >/dev/null
# no interactive first-boot questions on the console (locale, time zone, root password)
systemctl --root="$ROOT" --quiet mask systemd-firstboot.service
