#!/usr/bin/env bash
# Each Raspberry Pi the card is for can mount its root from the SD card with this kernel: the SD host
# controller of its device tree and every node that one depends on have a driver built in or in the
# initramfs (image-build/pi_boards.py, read from the files; no board needed). A board that fails
# fails the build. The report goes to WORK/pi-boards.json (build.sh keeps it beside the image).
set -euo pipefail
ROOT=$1 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
if ! python3 "$HERE/../../pi_boards.py" "$ROOT" "$WORK/bootfs" --json "$WORK/pi-boards.json" >/dev/null; then
  python3 - "$WORK/pi-boards.json" <<'PY' >&2
import json, sys
report = json.load(open(sys.argv[1]))
for board, found in report["boards"].items():
    if not found["boots"]:
        print(f"image-build: {board} cannot mount its root with kernel {report['kernel']}: no driver for {found['missing']}")
PY
  exit 1
fi
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("image-build: Pi boards with an SD driver chain:", ", ".join(b for b, ok in r["boot"].items() if ok))' "$WORK/pi-boards.json"
