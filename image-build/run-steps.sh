#!/usr/bin/env bash
# Run the numbered steps of image-build/steps on an image root, in order (mmdebstrap's
# --customize-hook calls this, so /dev, /proc and /sys are there for chroot):
#
#   run-steps.sh ROOT ARCH WORK
#
# A step is a folder NN-name (NN-name-ARCH: only for that architecture) with, all optional:
#   packages, packages-ARCH   Debian packages (collected by build.sh for mmdebstrap --include)
#   files/                    copied onto ROOT at the same paths (files/etc/fstab -> ROOT/etc/fstab)
#   run.sh                    run on the build host as `run.sh ROOT ARCH WORK` after files/ is copied
set -euo pipefail
ROOT=$1 ARCH=$2 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
for step in "$HERE"/steps/[0-9][0-9]-*/; do
  step=${step%/}
  name=$(basename "$step")
  case "$name" in
    *-amd64|*-arm64) [ "${name##*-}" = "$ARCH" ] || continue ;;
  esac
  started=$(date +%s)
  if [ -d "$step/files" ]; then cp -r --preserve=mode "$step/files/." "$ROOT/"; fi
  if [ -x "$step/run.sh" ]; then "$step/run.sh" "$ROOT" "$ARCH" "$WORK"; fi
  echo "image-build: step $name done in $(($(date +%s) - started)) s"
done
