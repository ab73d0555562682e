#!/usr/bin/env bash
# One command from a fresh checkout to a running appliance: creates .venv, installs Layerwatch and
# runs it on the bundled replay clip with the shipped model (no broker, no cloud, no hardware).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/layerwatch demo "$@"
