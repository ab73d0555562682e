#!/usr/bin/env bash
# Smaller and card-specific-free: apt caches and lists, documentation (copyright files kept), logs,
# the machine id (systemd makes one at first boot); the Debian package list for the lock files.
set -euo pipefail
ROOT=$1 WORK=$3
# shellcheck disable=SC2016  # dpkg-query's own ${field} syntax
chroot "$ROOT" dpkg-query -W -f '${Package}=${Version}\n' >"$WORK/manifest-debian.txt"
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*
find "$ROOT/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$ROOT/var/log" -type f -delete
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
