#!/usr/bin/env bash
# Build the target's wheels for the pinned packages that PyPI has only as source for CPython 3.13
# (build.sh calls this; run as root):
#
#   build-wheels.sh ARCH SUITE MIRROR CACHE SDIST...
#
# Each SDIST (a .tar.gz downloaded on the host with pip, pinned by constraints.txt) is built with
# `pip wheel --no-build-isolation` inside a throwaway SUITE root of ARCH made by mmdebstrap with
# the compilers (build-essential, python3-dev, swig, libcap-dev), through qemu-user-static for a
# foreign ARCH, and the wheels are kept in CACHE (CACHE/NAME-VERSION*.whl). An SDIST whose wheel is
# already in CACHE is not built again: the chroot is made only when one is missing. Measured
# (2026-12-07): lgpio 0.2.2.0 (no cp313 wheel; statically linked with PYPI=1, as on PyPI),
# python-prctl 1.8.1 (source only, needs libcap-dev) and pidng 4.0.9 (source only).
set -euo pipefail
ARCH=${1:?ARCH} SUITE=${2:?SUITE} MIRROR=${3:?MIRROR} CACHE=${4:?CACHE}
shift 4
mkdir -p "$CACHE"
# one builder per cache: a second build of the same ARCH waits here, then finds the wheels cached
exec 9>"$CACHE/.lock"
flock 9
todo=()
for sdist in "$@"; do
  base=$(basename "$sdist" .tar.gz)  # NAME-VERSION; wheel names use _ for - in NAME
  name=${base%-*} version=${base##*-}
  if compgen -G "$CACHE/${name//-/_}-$version-*.whl" >/dev/null; then
    echo "image-build: wheel for $base ($ARCH) from the cache"
  else
    todo+=("$sdist")
  fi
done
[ ${#todo[@]} -gt 0 ] || exit 0
builder=$(mktemp -d "$CACHE/../wheel-builder-$ARCH.XXXXXX")
trap 'rm -rf "$builder"' EXIT
echo "image-build: building ${#todo[@]} wheel(s) for $ARCH in a $SUITE chroot: ${todo[*]##*/}"
mmdebstrap --mode=root --variant=minbase --architectures="$ARCH" --quiet \
  --include=build-essential,python3-dev,python3-pip,python3-setuptools,python3-wheel,swig,libcap-dev \
  "$SUITE" "$builder/root" "deb $MIRROR $SUITE main"
install -d "$builder/root/build/sdists" "$builder/root/build/wheels"
cp "${todo[@]}" "$builder/root/build/sdists/"
# PYPI=1: lgpio compiles its C library into the module (no liblgpio on the image), as its PyPI wheels do
# shellcheck disable=SC2016  # expanded by the chroot's shell
chroot "$builder/root" env PYPI=1 sh -c 'python3 -m pip wheel --quiet --no-deps --no-index \
  --no-build-isolation --wheel-dir /build/wheels /build/sdists/*'
cp "$builder"/root/build/wheels/*.whl "$CACHE/"
ls "$builder"/root/build/wheels
