#!/usr/bin/env bash
# Updates without SSH: layerwatch-update.tar on the boot partition is applied before
# layerwatch.service (layerwatch-update.service) and kept or rolled back after its start
# (layerwatch-update-confirm.service). The command itself, /usr/local/sbin/layerwatch-update
# (scripts/update.sh), and the versioned venv layout come from scripts/install.sh (30-layerwatch).
set -euo pipefail
ROOT=$1
if [ ! -x "$ROOT/usr/local/sbin/layerwatch-update" ] || [ ! -L "$ROOT/opt/layerwatch/venv" ]; then
  echo "45-update: scripts/install.sh did not install layerwatch-update or the venv symlink" >&2
  exit 1
fi
systemctl --root="$ROOT" --quiet enable layerwatch-update.service layerwatch-update-confirm.service
