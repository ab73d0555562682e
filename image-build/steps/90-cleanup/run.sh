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
# the first boot's "an update of /usr happened" work is done here: ld.so.cache and the journal's
# catalog are current (dpkg's triggers), so /etc/.updated and /var/.updated get /usr's time and
# ldconfig.service, systemd-journal-catalog-update.service and systemd-update-done.service skip
# (ConditionNeedsUpdate=) instead of running beside layerwatch.service's start on the card. Last:
# nothing below /usr changes after this.
usr_time=$(stat -c %.9Y "$ROOT/usr")  # seconds.nanoseconds
for stamp in "$ROOT/etc/.updated" "$ROOT/var/.updated"; do
  echo "TIMESTAMP_NSEC=${usr_time/./}" >"$stamp"
  touch -r "$ROOT/usr" "$stamp"
done
