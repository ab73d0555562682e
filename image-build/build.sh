#!/usr/bin/env bash
# Build the Layerwatch SD-card / disk image, Debian 13 (trixie) with Python 3.13 (run as root on a
# Debian 12 or 13 host; no loop devices and no mounts are needed):
#
#   image-build/build.sh --arch amd64|arm64 --out DIR
#
# makes DIR/layerwatch-ARCH.img (MBR: FAT32 boot partition LWBOOT + ext4 root lwroot) and
# DIR/layerwatch-ARCH.img.xz, plus the lock files DIR/layerwatch-ARCH.debian.txt (package=version)
# and DIR/layerwatch-ARCH.python.txt (pip freeze of the venv), for arm64 DIR/layerwatch-arm64.pi-boards.json
# (each Pi's SD card driver chain in this kernel: image-build/pi_boards.py). The last line of output is one JSON
# object: {"arch", "build_s", "raw_mb", "compressed_mb", ...}.
#
# Environment: LAYERWATCH_MIRROR (Debian mirror, default http://deb.debian.org/debian),
# LAYERWATCH_SUITE (default trixie; the image's Python and wheels follow it: cp313),
# LAYERWATCH_WHEEL_CACHE (where the wheels built from source are kept, default OUT/wheel-cache-ARCH),
# LAYERWATCH_XZ_LEVEL (xz preset, default 6; the CI test uses 0), PYTHON (the host python with pip
# that downloads the wheels, default python3). Host packages: mmdebstrap mtools dosfstools fdisk
# e2fsprogs xz-utils bmap-tools python3-pip, for amd64 syslinux syslinux-common (BIOS boot), for arm64
# qemu-user-static binfmt-support arch-test.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
ARCH=""
OUT=""
SUITE=${LAYERWATCH_SUITE:-trixie}
case "$SUITE" in  # the suite's python3: the wheels' CPython
  bookworm) PY_VERSION=3.11 ;;
  *) PY_VERSION=3.13 ;;
esac
MIRROR=${LAYERWATCH_MIRROR:-http://deb.debian.org/debian}
SECURITY=${LAYERWATCH_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}
XZ_LEVEL=${LAYERWATCH_XZ_LEVEL:-6}
PYTHON=${PYTHON:-python3}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:?--arch needs amd64 or arm64}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$ARCH" in
  amd64) MACHINE=x86_64 ;;
  arm64) MACHINE=aarch64 ;;
  *) echo "build.sh: --arch amd64|arm64 is required" >&2; exit 2 ;;
esac
[ -n "$OUT" ] || { echo "build.sh: --out DIR is required" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root (mmdebstrap, chroot, file ownership)" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work-$ARCH
ROOTFS=$WORK/rootfs
IMAGE=$OUT/layerwatch-$ARCH.img
STARTED=$(date +%s)
say() { echo "image-build: $*"; }

# --- foreign architecture: qemu-user-static through binfmt_misc -------------------------------------
if [ "$(uname -m)" != "$MACHINE" ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  [ -e "/proc/sys/fs/binfmt_misc/qemu-$MACHINE" ] || update-binfmts --enable "qemu-$MACHINE"
fi

rm -rf "$WORK"
mkdir -p "$WORK/wheels" "$WORK/bootfs"

# --- wheels for the target on the build host (pip in a foreign chroot has no CA bundle) ------------
# They are made in the background, beside mmdebstrap (the sdists' compiler chroot takes minutes, the
# root's packages longer); mmdebstrap's first customize hook waits for WORK/wheels.done.
wheels() {
  say "wheels for $ARCH (CPython $PY_VERSION)"
  abi=cp${PY_VERSION/./}
  platforms=()
  for tag in manylinux_2_41 manylinux_2_39 manylinux_2_38 manylinux_2_36 manylinux_2_35 manylinux_2_34 \
    manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_$MACHINE")
  done
  platforms+=(--platform "linux_$MACHINE")  # the wheels build-wheels.sh made on the target's Debian
  target=("${platforms[@]}" --python-version "$PY_VERSION" --implementation cp --abi "$abi" --only-binary=:all:)
  # pinned packages with no cp313 wheel on PyPI (measured: lgpio 0.2.2.0 has wheels up to cp312;
  # pidng, picamera2's DNG writer, is source only): their sdists, built for the target in a chroot
  # (build-wheels.sh), kept in a cache so a rebuild does not compile them again
  from_source=(lgpio)
  [ "$ARCH" != arm64 ] || from_source+=(pidng)
  CACHE=${LAYERWATCH_WHEEL_CACHE:-$OUT/wheel-cache-$ARCH}
  mkdir -p "$WORK/sdists"
  pins=()
  for name in "${from_source[@]}"; do pins+=("$(grep -i "^$name==" "$HERE/constraints.txt")"); done
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation --dest "$WORK/sdists" "${pins[@]}"
  "$HERE/build-wheels.sh" "$ARCH" "$SUITE" "$MIRROR" "$CACHE" "$WORK"/sdists/*.tar.gz
  # the project's wheel from a copy, so the checkout gets no build/ folder (and two builds do not race)
  mkdir -p "$WORK/src"
  cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/appliance" "$WORK/src/"
  "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "$WORK/src"
  rm -rf "$WORK/src"
  wheel=$(find "$WORK/wheels" -name 'layerwatch-*.whl' | head -n 1)
  "$PYTHON" -m pip download --quiet --dest "$WORK/wheels" "${target[@]}" --find-links "$CACHE" \
    -c "$HERE/constraints.txt" "layerwatch[litert,cloud] @ file://$wheel" lgpio
  if [ "$ARCH" = arm64 ]; then
    # the Pi camera (steps/35-camera-arm64): picamera2 and the modules `import picamera2` loads, without
    # the ones only its optional features import (av, OpenEXR, jsonschema, libarchive-c: measured);
    # libcamera and prctl come from Debian
    "$PYTHON" -m pip download --quiet --no-deps --dest "$WORK/wheels/camera" "${target[@]}" \
      --find-links "$CACHE" -c "$HERE/constraints.txt" picamera2 pillow simplejpeg piexif videodev2 pidng
  fi
  touch "$WORK/wheels.done"
}
( set -e; wheels ) >"$WORK/wheels.log" 2>&1 &
wheels_pid=$!
trap 'kill "$wheels_pid" 2>/dev/null || true' EXIT
# the hook: wait for the wheels; when their job ended without them, its log and a failed build
wait_wheels="while [ ! -e '$WORK/wheels.done' ]; do kill -0 $wheels_pid 2>/dev/null || { cat '$WORK/wheels.log' >&2; exit 1; }; sleep 2; done"

# --- the root file system: mmdebstrap, then the numbered steps as its customize hook ---------------
packages=$(cat "$HERE"/steps/[0-9][0-9]-*/packages "$HERE"/steps/[0-9][0-9]-*/"packages-$ARCH" 2>/dev/null |
  sed 's/#.*//' | sed "s/@SUITE@/$SUITE/g" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
# arm64 takes its kernel from the suite's backports (steps/10-kernel/packages-arm64: the Pi 5's
# drivers); apt prefers the suite for everything else (backports' priority is 100), and on the card
# the kernel follows backports' updates
sources=("deb $MIRROR $SUITE main non-free-firmware" "deb $MIRROR $SUITE-updates main non-free-firmware"
  "deb $SECURITY $SUITE-security main non-free-firmware")
[ "$ARCH" != arm64 ] || sources+=("deb $MIRROR $SUITE-backports main non-free-firmware")
say "mmdebstrap $SUITE $ARCH from $MIRROR"
mmdebstrap --mode=root --variant=minbase --architectures="$ARCH" --include="$packages" \
  --customize-hook="$wait_wheels" \
  --customize-hook="\"$HERE/run-steps.sh\" \"\$1\" $ARCH \"$WORK\"" \
  "$SUITE" "$ROOTFS" "${sources[@]}"
wait "$wheels_pid" || true
grep -v '^WARNING: Location' "$WORK/wheels.log" || true
cp "$WORK/manifest-debian.txt" "$OUT/layerwatch-$ARCH.debian.txt"
cp "$WORK/manifest-python.txt" "$OUT/layerwatch-$ARCH.python.txt"
# arm64: which Pi boards the kernel can mount the SD card's root on (steps/55-pi-boards-arm64)
if [ -f "$WORK/pi-boards.json" ]; then cp "$WORK/pi-boards.json" "$OUT/layerwatch-$ARCH.pi-boards.json"; fi

# --- the image: MBR, FAT32 boot + ext4 root (make-image.sh: no loop device, no mount) -------------
say "image"
root_used_mb=$(du -sm "$ROOTFS" | cut -f1)
"$HERE/make-image.sh" "$ROOTFS" "$WORK/bootfs" "$IMAGE"

say "xz -$XZ_LEVEL"
xz --threads=0 -"$XZ_LEVEL" --keep --force "$IMAGE"
# the block map beside it: `bmaptool copy layerwatch-ARCH.img.xz /dev/sdX` writes only the used blocks and
# checks each against its SHA-256 (the image file is sparse: make-image.sh leaves the free space as holes)
say "bmap"
bmaptool create --output "$IMAGE.bmap" "$IMAGE"

build_s=$(($(date +%s) - STARTED))
raw_mb=$(($(stat -c %s "$IMAGE") / 1048576))
xz_mb=$(awk -v b="$(stat -c %s "$IMAGE.xz")" 'BEGIN { printf "%.1f", b / 1048576 }')
mapped_mb=$(awk -F'[<>]' '/^ *<MappedBlocksCount>/ { m = $3 } /^ *<BlockSize>/ { b = $3 } END { printf "%d", m * b / 1048576 }' "$IMAGE.bmap")
printf '{"arch": "%s", "build_s": %d, "raw_mb": %d, "compressed_mb": %s, "mapped_mb": %d, "root_used_mb": %d, "image": "%s", "kernel": "%s", "xz_level": %s}\n' \
  "$ARCH" "$build_s" "$raw_mb" "$xz_mb" "$mapped_mb" "$root_used_mb" "$IMAGE" "$(cat "$WORK/kernel-version")" "$XZ_LEVEL"
