#!/usr/bin/env bash
# Print the path of a `udevadm` that has the `verify` verb (systemd >= 254), fetching one if needed.
#
# Debian 12 ships udev 252 (no `udevadm verify`). This script downloads the `udev` and
# `libsystemd-shared` packages from bookworm-backports with `apt-get download`, using a private,
# throw-away apt state (the system's sources and package lists are not touched), unpacks them
# with `dpkg -x` into a cache directory (nothing is installed) and prints a wrapper that runs the
# unpacked udevadm against its unpacked libsystemd-shared.
#
#   scripts/get-udevadm-verify.sh            -> prints e.g. ~/.cache/layerwatch/udevadm/udevadm
#   LAYERWATCH_UDEVADM_CACHE=DIR scripts/get-udevadm-verify.sh
#
# Exit 0 and one line (the path) on success; exit 1 with the reason on stderr otherwise.
set -euo pipefail

CACHE=${LAYERWATCH_UDEVADM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/layerwatch/udevadm}
MIRROR=${LAYERWATCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
WRAPPER="$CACHE/udevadm"

works() { "$1" verify --help >/dev/null 2>&1; }

if [ -x "$WRAPPER" ] && works "$WRAPPER"; then
  echo "$WRAPPER"
  exit 0
fi
# a udevadm on PATH that is new enough needs no download
if command -v udevadm >/dev/null 2>&1 && works "$(command -v udevadm)"; then
  command -v udevadm
  exit 0
fi
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || { echo "get-udevadm-verify: $tool is missing" >&2; exit 1; }
done

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial" "$WORK/debs" "$WORK/sourceparts"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SIGNED=""
[ -f "$KEYRING" ] && SIGNED="[signed-by=$KEYRING] "
echo "deb ${SIGNED}$MIRROR bookworm-backports main" >"$WORK/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$WORK/sources.list"
  -o "Dir::Etc::SourceParts=$WORK/sourceparts"
  -o "Dir::State::Lists=$WORK/lists"
  -o "Dir::Cache=$WORK/cache"
  -o "Dir::Cache::Archives=$WORK/archives"
  -o "Debug::NoLocking=1"
  -o "APT::Get::List-Cleanup=0"
  -q
)
if ! apt-get "${APT_OPTS[@]}" update >"$WORK/update.log" 2>&1; then
  echo "get-udevadm-verify: apt-get update of bookworm-backports failed:" >&2
  tail -n 5 "$WORK/update.log" >&2
  exit 1
fi
if ! (cd "$WORK/debs" && apt-get "${APT_OPTS[@]}" download udev libsystemd-shared) >"$WORK/download.log" 2>&1; then
  echo "get-udevadm-verify: apt-get download failed:" >&2
  tail -n 5 "$WORK/download.log" >&2
  exit 1
fi

rm -rf "$CACHE/root"
for deb in "$WORK"/debs/*.deb; do
  dpkg -x "$deb" "$CACHE/root"
done
BINARY=$(find "$CACHE/root" -path '*bin/udevadm' -type f | head -n 1)
LIBDIR=$(dirname "$(find "$CACHE/root" -name 'libsystemd-shared-*.so' | head -n 1)")
if [ -z "$BINARY" ] || [ "$LIBDIR" = "." ]; then
  echo "get-udevadm-verify: the unpacked packages hold no udevadm or libsystemd-shared" >&2
  exit 1
fi
cat >"$WRAPPER" <<EOF
#!/bin/sh
# udevadm from bookworm-backports, unpacked (not installed) by scripts/get-udevadm-verify.sh
LD_LIBRARY_PATH="$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$BINARY" "\$@"
EOF
chmod 0755 "$WRAPPER"
if ! works "$WRAPPER"; then
  echo "get-udevadm-verify: the unpacked udevadm has no working 'verify' verb" >&2
  exit 1
fi
echo "$WRAPPER"
