#!/usr/bin/env bash
# Networking with systemd-networkd + resolved; SSH is off until a key is given on the boot partition,
# and every card gets its own host keys (generated at first boot, not baked into the image). The LAN
# finds the appliance by name: avahi-daemon answers NAME.local (NAME: the host name, "layerwatch" or
# the boot partition's hostname file), and layerwatch-address.service writes the addresses to the
# boot partition's layerwatch-address.txt.
set -euo pipefail
ROOT=$1
systemctl --root="$ROOT" --quiet enable systemd-networkd.service systemd-resolved.service \
  avahi-daemon.service layerwatch-address.service
systemctl --root="$ROOT" --quiet disable ssh.service ssh.socket 2>/dev/null || true
rm -f "$ROOT"/etc/ssh/ssh_host_*
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
