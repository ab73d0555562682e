#!/usr/bin/env bash
# The Pi camera in the venv: picamera2 and the modules `import picamera2` loads, from the wheels
# build.sh downloaded (WORK/wheels/camera, pinned by constraints.txt; --no-deps: its optional
# features' packages - av, OpenEXR, jsonschema, libarchive-c - are not imported by `import picamera2`
# and are left out), and Debian's python3-libcamera and python3-prctl seen through symlinks in the
# venv's site-packages: only those two modules, so the venv's own numpy, pillow etc. are the ones
# imported (a venv with --system-site-packages would see all of /usr/lib/python3/dist-packages).
# pykms (kms++, for picamera2's DRM screen preview) is in neither Debian nor PyPI: a stand-in module
# that raises when a preview is started (the appliance has no screen preview).
set -euo pipefail
ROOT=$1 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../../.." && pwd)
VENV=/opt/layerwatch/venv
site=$(chroot "$ROOT" "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stage=/tmp/layerwatch-camera-wheels
rm -rf "${ROOT:?}$stage"
cp -r "$WORK/wheels/camera" "$ROOT$stage"
cp "$SRC/image-build/constraints.txt" "$ROOT$stage/constraints.txt"
chroot "$ROOT" "$VENV/bin/pip" install --quiet --no-index --no-cache-dir --no-deps --find-links "$stage" \
  -c "$stage/constraints.txt" picamera2 pillow simplejpeg piexif videodev2 pidng
rm -rf "${ROOT:?}$stage"
chroot "$ROOT" "$VENV/bin/pip" freeze --all >"$WORK/manifest-python.txt"  # the lock file, camera included
dist=/usr/lib/python3/dist-packages
ln -sfn "$dist/libcamera" "$ROOT$site/libcamera"
for module in "$ROOT$dist"/prctl.py "$ROOT$dist"/_prctl.cpython-*.so; do
  ln -sfn "${module#"$ROOT"}" "$ROOT$site/$(basename "$module")"
done
install -m 0644 "$HERE/pykms.py" "$ROOT$site/pykms.py"
# measured again in the booted image (boot-test.sh --checks: checks.import_picamera2_libcamera)
chroot "$ROOT" "$VENV/bin/python" -c 'import picamera2, libcamera, numpy; print("image-build: picamera2", picamera2.__file__, "libcamera", libcamera.__file__, "numpy", numpy.__version__)' ||
  echo "image-build: WARNING: import picamera2, libcamera failed in the venv (above)" >&2
