#!/usr/bin/env bash
# The test command, from a fresh Debian 12 checkout: installs what the tests need, then runs ruff,
# mypy and the whole test suite (real mosquitto, RTSP and HTTP servers and headless Chromium on
# 127.0.0.1; as root also the SD image built and booted under QEMU).
#
# 1. Debian packages (below) that are missing: apt-get as root, `sudo -n` otherwise; when neither
#    works, or apt cannot install one, one line says which and how, and nothing runs.
# 2. `udevadm verify` (scripts/get-udevadm-verify.sh: unpacked from bookworm-backports, cached).
# 3. The venv (default .venv, the one scripts/demo.sh uses; LAYERWATCH_VENV=DIR picks another) with
#    Layerwatch and its extras, installed once and again only when pyproject.toml changes.
# Arguments go to pytest (scripts/test.sh tests/test_config.py -x); --install-only stops after step 3.
# PY=python runs with that Python as it is (no install at all).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
EXTRAS=dev,litert,systemd,cloud,train  # train: torch (CPU build), so the training-code tests run too

# what the tests and docs use: brokers, RTSP server, ffmpeg, systemd-python's build, the console's browser
PACKAGES=(
  mosquitto mosquitto-clients ffmpeg openssl python3-venv python3-pip
  gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-tools
  libsystemd-dev pkg-config systemd shellcheck
  chromium chromium-driver
)
# the SD image build and boot tests (tests/test_image_build.py) run only as root
IMAGE_PACKAGES=(
  mmdebstrap debian-archive-keyring qemu-system-x86 qemu-utils mtools dosfstools fdisk e2fsprogs
  xz-utils qemu-user-static binfmt-support arch-test syslinux syslinux-common ovmf bmap-tools
)

say() { echo "scripts/test.sh: $*" >&2; }

install_debian_packages() {
  local wanted=("${PACKAGES[@]}") missing=() sudo=() package
  [ "$(id -u)" -eq 0 ] && wanted+=("${IMAGE_PACKAGES[@]}")
  if ! command -v dpkg-query >/dev/null; then
    say "not a Debian system (no dpkg-query): install the equivalents of ${wanted[*]}, then run PY=python scripts/test.sh"
    exit 1
  fi
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    if ! sudo -n true 2>/dev/null; then
      say "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
      exit 1
    fi
    sudo=(sudo -n)
  fi
  echo "== Debian packages: ${missing[*]}"
  if ! "${sudo[@]}" apt-get update -qq; then
    say "apt-get update failed (above), so ${missing[*]} cannot be installed; fix the apt sources, then: apt-get install -y ${missing[*]}"
    exit 1
  fi
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    local broken=()
    for package in "${missing[@]}"; do
      "${sudo[@]}" apt-get install -s -qq "$package" >/dev/null 2>&1 || broken+=("$package")
    done
    say "apt-get cannot install ${broken[*]:-${missing[*]}} (errors above); fix the apt sources or install them by hand: apt-get install -y ${broken[*]:-${missing[*]}}"
    exit 1
  fi
  # mosquitto's own service is not needed: the tests start their brokers on free ports
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null; then
    "${sudo[@]}" systemctl stop mosquitto 2>/dev/null || true
  fi
}

if [ -z "${PY:-}" ]; then
  install_debian_packages
  if ! scripts/get-udevadm-verify.sh >/dev/null; then
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    say "no 'udevadm verify' (above): tests/test_udev_rules.py will be skipped"
  fi
  VENV=${LAYERWATCH_VENV:-.venv}
  scripts/install-venv.sh "$VENV" "$EXTRAS"
  PY="$VENV/bin/python"
  PATH="$(cd "$VENV/bin" && pwd):$PATH"  # `layerwatch` and the venv's tools for the tests
  export PATH
elif ! "$PY" -c 'import ruff, mypy, pytest, xdist' 2>/dev/null; then
  say "$PY lacks the test tools: $PY -m pip install -e '.[$EXTRAS]' (or run without PY=)"
  exit 2
fi

if [ "${1:-}" = "--install-only" ]; then
  echo "installed: the Debian packages, udevadm verify, $PY"
  exit 0
fi
echo "== ruff, mypy"
"$PY" -m ruff check appliance tests scripts image-build
"$PY" -m ruff format --check appliance tests scripts
"$PY" -m mypy
# two pytest-xdist workers: the 10-minute soak and the SD image build and boots run beside the rest
# (a clean-clone .ci/run: 551 passed in 892 s, against about 25 minutes one test after another); -rs: why any skipped
echo "== pytest"
exec "$PY" -m pytest -q -rs -p no:cacheprovider -n 2 "$@"
