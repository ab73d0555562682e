#!/usr/bin/env bash
# Make (or reuse) the venv that scripts/demo.sh and scripts/test.sh run in, and install Layerwatch
# into it, once: a stamp file in the venv records the hash of pyproject.toml and the extras
# installed, and nothing is installed again until pyproject.toml changes or more extras are asked
# for. The two scripts share one venv without undoing each other's work: the demo is content with
# any install of the current pyproject.toml, the test command wants its extras on top.
#
#   scripts/install-venv.sh VENV [EXTRAS]     e.g. scripts/install-venv.sh .venv dev,litert
#
# Shows one progress line while pip works (pip's own output goes to VENV/pip-install.log) and,
# when pip fails, the log's last lines and the command to repeat. PYTHON picks the interpreter the
# venv is made from (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:?usage: scripts/install-venv.sh VENV [EXTRAS]}
EXTRAS=${2:-}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.layerwatch-install"
HASH=$(sha256sum pyproject.toml | cut -c1-16)
TARGET="."
[ -n "$EXTRAS" ] && TARGET=".[$EXTRAS]"

# the stamp: "<hash of pyproject.toml> <extras, comma-separated>"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ]; then
  read -r have_hash have_extras <"$STAMP" || true
  if [ "$have_hash" = "$HASH" ]; then
    missing=""
    for extra in ${EXTRAS//,/ }; do
      case ",${have_extras:-}," in *",$extra,"*) ;; *) missing=1 ;; esac
    done
    [ -z "$missing" ] && exit 0
    have_extras=${have_extras:-}
    EXTRAS=$(printf '%s,%s' "$have_extras" "$EXTRAS" | tr ',' '\n' | grep -v '^$' | sort -u | paste -sd, -)
    TARGET=".[$EXTRAS]"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    echo "cannot create a venv with $PYTHON: install python3-venv (sudo apt-get install -y python3-venv python3-pip)" >&2
    exit 1
  fi
fi
LOG="$VENV/pip-install.log"
echo "installing Layerwatch ($TARGET) into $VENV: once, until pyproject.toml changes (log: $LOG)"
rm -f "$STAMP"
started=$SECONDS
show() {  # one progress line on a terminal, nothing more in a log
  if [ -t 1 ]; then printf '\r\033[K  %s' "${1:0:100}"; fi
}
{
  "$VENV/bin/python" -m pip install --upgrade pip
  # --no-warn-script-location: quiet; setuptools' "Editable installation" note stays in the log
  "$VENV/bin/python" -m pip install --no-warn-script-location -e "$TARGET"
} >"$LOG" 2>&1 &
pip_pid=$!
while kill -0 "$pip_pid" 2>/dev/null; do
  line=$(grep -E '^(Collecting|Building|Installing collected)' "$LOG" | tail -n 1 || true)
  count=$(grep -c '^Collecting' "$LOG" || true)
  show "pip: $count packages so far, $((SECONDS - started)) s: $line"
  sleep 1
done
if ! wait "$pip_pid"; then
  [ -t 1 ] && printf '\r\033[K'
  tail -n 15 "$LOG" >&2
  echo "pip install failed (above; full log $LOG); to retry by hand: $VENV/bin/python -m pip install -e '$TARGET'" >&2
  exit 1
fi
[ -t 1 ] && printf '\r\033[K'
echo "$HASH $EXTRAS" >"$STAMP"
echo "installed in $((SECONDS - started)) s ($(grep -c '^Collecting' "$LOG" || true) packages checked)"
