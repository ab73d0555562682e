#!/usr/bin/env bash
# The test command: lint, type-check and the whole test suite (real mosquitto, RTSP and HTTP
# servers on 127.0.0.1). Expects the dev install: pip install -e '.[dev,litert,systemd,cloud,train]'
# plus the Debian packages that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
"$PY" -m ruff check appliance tests scripts
"$PY" -m ruff format --check appliance tests scripts
"$PY" -m mypy
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
