#!/usr/bin/env bash
# Networking with systemd-networkd + resolved; SSH is off until a key is given on the boot partition,
# and every card gets its own host keys (generated at first boot, not baked into the image).
set -euo pipefail
ROOT=$1
systemctl --root="$ROOT" --quiet enable systemd-networkd.service systemd-resolved.service
systemctl --root="$ROOT" --quiet disable ssh.service ssh.socket 2>/dev/null || true
rm -f "$ROOT"/etc/ssh/ssh_host_*
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
