#!/usr/bin/env bash
# The test command: lint, type-check and the whole test suite (real mosquitto, RTSP and HTTP
# servers on 127.0.0.1). Expects the dev install: pip install -e '.[dev,litert,systemd,cloud,train]'
# plus the Debian packages that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's .venv (made by scripts/demo.sh) when there is one, else the python on the PATH
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
if ! "$PY" -c 'import ruff, mypy, pytest, xdist' 2>/dev/null; then
  echo "scripts/test.sh: run first: $PY -m pip install -e '.[dev,litert,systemd,cloud,train]'" >&2
  exit 2
fi
"$PY" -m ruff check appliance tests scripts image-build
"$PY" -m ruff format --check appliance tests scripts
"$PY" -m mypy
# two pytest-xdist workers: the 10-minute soak and the SD image build and boots run beside the rest
# (a clean-clone .ci/run: 551 passed in 892 s, against about 25 minutes one test after another); -rs: why any skipped
exec "$PY" -m pytest -q -rs -p no:cacheprovider -n 2 "$@"
