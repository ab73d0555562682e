#!/usr/bin/env bash
# Make an update bundle for `layerwatch-update` (scripts/update.sh) from this checkout:
#
#   scripts/make-update-bundle.sh --out DIR                  only the project's wheel ("reuse": the
#                                                            device keeps the packages it has; any arch)
#   scripts/make-update-bundle.sh --full --arch arm64|amd64 --python 3.X --out DIR
#                                                            ... and every dependency's wheel for that
#                                                            architecture and Python (a fresh venv)
#   ... --wheel FILE                                         use this project wheel instead of building one
#   ... --find-links DIR                                     more wheels (repeatable), e.g. build.sh's
#                                                            OUT/wheel-cache-ARCH (lgpio, pidng built
#                                                            from source where PyPI has no wheel)
#
# writes DIR/layerwatch-update.tar (uncompressed: wheels are zip files already) holding
# layerwatch-update/{MANIFEST, SHA256SUMS, constraints.txt, wheels/*.whl}, and DIR/layerwatch-update.tar.sha256.
# The last line of output is one JSON object: {"bundle", "mode", "version", "mb", "sha256", "wheels"}.
#
# --full downloads the wheels the way image-build/build.sh does (pip download --platform
# manylinux_*_ARCH --only-binary=:all: with image-build/constraints.txt) for the device's Python
# (`python3 --version` on it), plus lgpio and, for arm64, the Pi camera's packages (picamera2 and
# what it imports), as the image's venv has them. A "reuse" bundle is refused on the device when the new version needs a
# package the running venv lacks: then make a full one. PYTHON: the host python with pip (python3).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=""
ARCH=""
FULL=0
PYVER=""
GIVEN_WHEEL=""
LINKS=()
PYTHON=${PYTHON:-python3}
CONSTRAINTS=$SRC/image-build/constraints.txt
REQUIREMENT="layerwatch[litert,cloud]"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --arch) ARCH=${2:?--arch needs amd64 or arm64}; shift ;;
    --full) FULL=1 ;;
    --python) PYVER=${2:?--python needs a version like 3.13}; shift ;;
    --wheel) GIVEN_WHEEL=$(realpath "${2:?--wheel needs a file}"); shift ;;
    --find-links) LINKS+=(--find-links "$(realpath "${2:?--find-links needs a directory}")"); shift ;;
    --constraints) CONSTRAINTS=$(realpath "${2:?--constraints needs a file}"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "make-update-bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$OUT" ] || { echo "make-update-bundle.sh: --out DIR is required" >&2; exit 2; }
case "$FULL/$ARCH" in
  1/amd64) MACHINE=x86_64 ;;
  1/arm64) MACHINE=aarch64 ;;
  1/*) echo "make-update-bundle.sh: --full needs --arch amd64|arm64" >&2; exit 2 ;;
  0/ | 0/amd64 | 0/arm64) ;;
  *) echo "make-update-bundle.sh: --arch amd64|arm64" >&2; exit 2 ;;
esac
if [ "$FULL" = 1 ] && ! [[ "$PYVER" =~ ^3\.[0-9]+$ ]]; then
  echo "make-update-bundle.sh: --full needs --python 3.X, the device's Python (python3 --version on it;" \
    "the device refuses wheels for another one)" >&2
  exit 2
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGE=$(mktemp -d "$OUT/.bundle.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
B=$STAGE/layerwatch-update
mkdir -p "$B/wheels"
say() { echo "make-update-bundle: $*" >&2; }

if [ -n "$GIVEN_WHEEL" ]; then
  cp "$GIVEN_WHEEL" "$B/wheels/"
else
  # from a copy, so the checkout gets no build/ folder (as build.sh does)
  mkdir -p "$STAGE/src"
  cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/appliance" "$STAGE/src/"
  find "$STAGE/src" -name __pycache__ -prune -exec rm -rf {} +
  say "building the project wheel"
  "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$B/wheels" "$STAGE/src" >&2
  rm -rf "$STAGE/src"
fi
wheel=$(find "$B/wheels" -name 'layerwatch-*.whl' | head -n 1)
[ -n "$wheel" ] || { echo "make-update-bundle.sh: no layerwatch-*.whl made" >&2; exit 1; }
version=$(basename "$wheel" | cut -d- -f2)

if [ "$FULL" = 1 ]; then
  abi=cp${PYVER//./}
  platforms=()
  for tag in manylinux_2_41 manylinux_2_39 manylinux_2_38 manylinux_2_36 manylinux_2_35 manylinux_2_34 \
    manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_$MACHINE")
  done
  platforms+=(--platform "linux_$MACHINE")  # wheels built on the target's Debian (build.sh's cache)
  target=("${platforms[@]}" --python-version "$PYVER" --implementation cp --abi "$abi" --only-binary=:all:
    "${LINKS[@]}" -c "$CONSTRAINTS")
  say "downloading the wheels for $ARCH, Python $PYVER"
  "$PYTHON" -m pip download --quiet --dest "$B/wheels" "${target[@]}" "$REQUIREMENT @ file://$wheel" >&2
  # what the image's venv has beside the project (the device refuses a bundle that lacks one of them)
  extra=(lgpio)
  [ "$ARCH" != arm64 ] || extra+=(picamera2 pillow simplejpeg piexif videodev2 pidng)
  if ! "$PYTHON" -m pip download --quiet --no-deps --dest "$B/wheels" "${target[@]}" "${extra[@]}" >&2; then
    echo "make-update-bundle.sh: no $ARCH wheel for Python $PYVER of one of ${extra[*]} (above): give" \
      "build.sh's wheels built from source with --find-links OUT/wheel-cache-$ARCH" >&2
    exit 1
  fi
  cp "$CONSTRAINTS" "$B/constraints.txt"
  mode=full
else
  # the project's own pin only: the device's venv keeps its other packages
  echo "layerwatch==$version" >"$B/constraints.txt"
  mode=reuse
fi

{
  echo "# layerwatch update bundle (scripts/make-update-bundle.sh); read by layerwatch-update"
  echo "format=1"
  echo "version=$version"
  echo "mode=$mode"
  echo "requirement=$REQUIREMENT"
  echo "arch=${ARCH:-any}"
  [ "$FULL" = 0 ] || echo "python=$PYVER"
  echo "made=$(date -u +%FT%TZ)"
  echo "source=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$B/MANIFEST"
sums=$(cd "$B" && find . -type f | sed 's#^\./##' | sort | xargs sha256sum)
echo "$sums" >"$B/SHA256SUMS"

bundle=$OUT/layerwatch-update.tar
tar --create --file "$bundle.tmp" --owner=0 --group=0 --numeric-owner --sort=name -C "$STAGE" layerwatch-update
mv -f "$bundle.tmp" "$bundle"
sha=$(sha256sum "$bundle" | cut -d' ' -f1)
echo "$sha  layerwatch-update.tar" >"$bundle.sha256"
n=$(find "$B/wheels" -name '*.whl' | wc -l)
mb=$(awk -v b="$(stat -c %s "$bundle")" 'BEGIN { printf "%.1f", b / 1048576 }')
say "$bundle: layerwatch $version, $mode, $n wheel(s), $mb MB"
printf '{"bundle": "%s", "mode": "%s", "version": "%s", "mb": %s, "sha256": "%s", "wheels": %d}\n' \
  "$bundle" "$mode" "$version" "$mb" "$sha" "$n"
