#!/usr/bin/env bash
# Each Raspberry Pi the card is for can mount its root from the SD card with this kernel: the SD host
# controller of its device tree and every node that one depends on have a driver built in or in the
# initramfs (image-build/pi_boards.py, read from the files; no board needed). A board that fails
# fails the build (pi_boards.py names it and what it lacks). The report goes to WORK/pi-boards.json
# (build.sh keeps it beside the image).
set -euo pipefail
ROOT=$1 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
python3 "$HERE/../../pi_boards.py" "$ROOT" "$WORK/bootfs" --json "$WORK/pi-boards.json" >/dev/null
