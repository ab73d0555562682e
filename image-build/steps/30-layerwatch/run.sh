#!/usr/bin/env bash
# The project, installed the supported way: scripts/install.sh --root with the venv built in the
# image from the wheels downloaded on the build host (WORK/wheels, pinned by constraints.txt).
# The image ships no /etc/layerwatch/layerwatch.toml: the card comes up "unconfigured" until one is
# dropped on the boot partition (40-firstboot). The example and the replay demo stay in /usr/share.
set -euo pipefail
ROOT=$1 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../../.." && pwd)
"$SRC/scripts/install.sh" --root "$ROOT" --wheels "$WORK/wheels" --constraints "$SRC/image-build/constraints.txt"
rm -f "$ROOT/etc/layerwatch/layerwatch.toml"
install -m 0644 "$SRC/appliance/defaults/layerwatch.example.toml" "$ROOT/usr/share/layerwatch/"
install -m 0644 "$SRC/appliance/defaults/demo.mp4" "$ROOT/usr/share/layerwatch/demo.mp4"
# what is in the image, for the build's lock files (WORK/manifest-*)
chroot "$ROOT" /opt/layerwatch/venv/bin/pip freeze --all >"$WORK/manifest-python.txt"
chroot "$ROOT" /opt/layerwatch/venv/bin/layerwatch check-config \
  --config /usr/share/layerwatch/layerwatch.demo.toml
