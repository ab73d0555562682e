#!/usr/bin/env bash
# Install Layerwatch onto Raspberry Pi OS, Debian or JetPack from this checkout (run as root):
#   sudo scripts/install.sh            install or upgrade (idempotent)
#   sudo scripts/install.sh --uninstall  remove the service, venv, units and user (keeps /etc/layerwatch)
# On Raspberry Pi OS the venv sees the system's python3-picamera2 (--system-site-packages).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/layerwatch
MODELS=/usr/share/layerwatch/models
UNIT_DIR=/etc/systemd/system
USER_NAME=layerwatch

if [ "$(id -u)" -ne 0 ]; then echo "run as root (sudo $0)" >&2; exit 1; fi

uninstall() {
  systemctl disable --now layerwatch.service 2>/dev/null || true
  rm -f "$UNIT_DIR/layerwatch.service"
  systemctl daemon-reload 2>/dev/null || true
  rm -rf "$PREFIX" "$MODELS"
  id "$USER_NAME" >/dev/null 2>&1 && userdel "$USER_NAME" || true
  echo "Layerwatch removed (configuration kept in /etc/layerwatch)"
}

if [ "${1:-}" = "--uninstall" ]; then uninstall; exit 0; fi

apt-get install -y --no-install-recommends python3-venv python3-pip >/dev/null
SITE=""
if dpkg -s python3-picamera2 >/dev/null 2>&1; then SITE="--system-site-packages"; fi

id "$USER_NAME" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/layerwatch --shell /usr/sbin/nologin "$USER_NAME"
for group in video gpio; do
  getent group "$group" >/dev/null || groupadd --system "$group"
  usermod -aG "$group" "$USER_NAME"
done

[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv $SITE "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$SRC[litert]"
install -d "$MODELS"
install -m 0644 "$SRC"/models/*.onnx "$SRC"/models/*.json "$SRC"/models/*.npz "$MODELS"/

install -d -m 0750 /etc/layerwatch /etc/layerwatch/credentials
[ -f /etc/layerwatch/layerwatch.toml ] || install -m 0640 "$SRC/appliance/defaults/layerwatch.example.toml" /etc/layerwatch/layerwatch.toml
# LoadCredential= needs each file to exist; an empty file means "not set"
for credential in discord_webhook_url mqtt_password aws_credentials; do
  [ -e "/etc/layerwatch/credentials/$credential" ] || install -m 0600 /dev/null "/etc/layerwatch/credentials/$credential"
done
chgrp -R "$USER_NAME" /etc/layerwatch
install -m 0644 "$SRC/systemd/layerwatch.service" "$UNIT_DIR/layerwatch.service"
systemctl daemon-reload
systemctl enable layerwatch.service
echo "Installed. Edit /etc/layerwatch/layerwatch.toml, check it with"
echo "  $PREFIX/venv/bin/layerwatch check-config"
echo "then: systemctl restart layerwatch && journalctl -fu layerwatch"
