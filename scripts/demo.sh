#!/usr/bin/env bash
# One command from a fresh checkout to a running appliance: makes .venv and installs Layerwatch
# into it (once: again only when pyproject.toml changes; LAYERWATCH_VENV=DIR picks another venv),
# then runs it on the bundled replay clip with the shipped model (no broker, no cloud, no
# hardware). Arguments go to `layerwatch demo` (--rate, --loop, --port; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LAYERWATCH_VENV:-.venv}
scripts/install-venv.sh "$VENV"
exec "$VENV/bin/layerwatch" demo "$@"
