#!/usr/bin/env bash
# Install Layerwatch from this checkout onto Raspberry Pi OS, Debian or JetPack (run as root).
#
#   sudo scripts/install.sh                  install or upgrade (idempotent: run it again any time)
#   sudo scripts/install.sh --uninstall      remove everything it installed, config and state too
#   sudo scripts/install.sh --uninstall --keep-data   ... but keep /etc/layerwatch and /var/lib/layerwatch
#   scripts/install.sh --dry-run [...]       print what would be done, change nothing (no root needed)
#   scripts/install.sh --root DIR [...]      install the files into an image root DIR (units, udev
#                                            rules, config skeleton, models; units enabled with
#                                            systemctl --root); no apt, no venv, no service start
#   scripts/install.sh --root DIR --wheels W [--constraints FILE]
#                                            ... and in DIR (a Debian root, via chroot) the user and
#                                            the venv from the wheels in W only (pip --no-index);
#                                            the SD-image build uses this (image-build/)
#
# What it installs: the system user "layerwatch" (groups: video, gpio - nothing else), a venv in
# /opt/layerwatch/venvs/VERSION-STAMP with /opt/layerwatch/venv a symlink to it (an older plain
# /opt/layerwatch/venv folder is moved there; a later run installs into the active venv; updates with
# rollback: layerwatch-update), on Raspberry Pi OS with --system-site-packages so apt's
# python3-picamera2 and python3-lgpio are used (and apt's numpy, which they are built for), the
# update command /usr/local/sbin/layerwatch-update (scripts/update.sh, with
# /usr/local/lib/layerwatch/update-bundle.sh), the command
# /usr/local/bin/layerwatch (a link to the active venv's, so it follows updates), the models in
# /usr/share/layerwatch/models, the config skeleton /etc/layerwatch/layerwatch.toml (never
# overwritten) with empty credential files, layerwatch.service and layerwatch-fan.service in
# /etc/systemd/system, and /etc/udev/rules.d/99-layerwatch.rules. The groups video and gpio are
# left on uninstall (other software uses them). A 64-bit OS is needed (amd64 or arm64): on 32-bit
# Raspberry Pi OS (armhf) it stops and says so, changing nothing (onnxruntime has no armv7l wheel).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=""
DRY_RUN=0
ACTION=install
KEEP_DATA=0
WHEELS=""
CONSTRAINTS=""
USER_NAME=layerwatch
GROUPS_NEEDED=(video gpio)
UNITS=(layerwatch.service layerwatch-fan.service)
CREDENTIALS=(discord_webhook_url mqtt_username mqtt_password rtsp_url aws_credentials telegram_bot_token printer_api_key api_token)

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) ACTION=uninstall ;;
    --keep-data) KEEP_DATA=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift ;;
    --root=*) ROOT=$(realpath -m "${1#--root=}") ;;
    --wheels) WHEELS=$(realpath -m "${2:?--wheels needs a directory}"); shift ;;
    --constraints) CONSTRAINTS=$(realpath -m "${2:?--constraints needs a file}"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$WHEELS" ] && [ -z "$ROOT" ]; then
  echo "install.sh: --wheels needs --root" >&2
  exit 2
fi

PREFIX=$ROOT/opt/layerwatch
MODELS=$ROOT/usr/share/layerwatch/models
UNIT_DIR=$ROOT/etc/systemd/system
UDEV_DIR=$ROOT/etc/udev/rules.d
UPDATE_CMD=$ROOT/usr/local/sbin/layerwatch-update
UPDATE_LIB=$ROOT/usr/local/lib/layerwatch/update-bundle.sh  # the half of it that verifies and builds
# `layerwatch` on PATH (sudo's secure_path too): a link to the active venv's command
COMMAND_LINK=$ROOT/usr/local/bin/layerwatch
# where the platform is detected (tests point it at a fake /etc)
DETECT_ETC=${LAYERWATCH_DETECT_ETC:-/etc}
CONF_DIR=$ROOT/etc/layerwatch
STATE_DIR=$ROOT/var/lib/layerwatch
SYS_PREFIX=/opt/layerwatch
SYS_VENVS=$SYS_PREFIX/venvs
SYS_CONF=/etc/layerwatch/layerwatch.toml

# run CMD...: do it, or only print it with --dry-run
run() {
  if [ "$DRY_RUN" = 1 ]; then echo "+ $*"; else "$@"; fi
}
say() { echo "layerwatch: $*"; }
system_wide() { [ -z "$ROOT" ]; }  # apt, users, venv and services only on the live system
systemd_running() { system_wide && [ -d /run/systemd/system ]; }

if system_wide && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "run as root (sudo $0), or try --dry-run" >&2
  exit 1
fi

platform() {
  if [ -f "$DETECT_ETC/nv_tegra_release" ]; then echo jetpack
  elif [ -f "$DETECT_ETC/rpi-issue" ] || dpkg -s raspberrypi-sys-mods >/dev/null 2>&1; then echo raspios
  else echo debian
  fi
}

# a 64-bit userland (amd64, arm64) or stop, before anything is changed: onnxruntime, which runs the
# detector, has no 32-bit ARM wheel. A 32-bit Raspberry Pi OS runs a 64-bit kernel on a Pi 4 or 5
# (uname -m says aarch64), so dpkg's architecture is what counts.
check_64bit() {
  local arch machine
  machine=$(uname -m)
  arch=$(dpkg --print-architecture 2>/dev/null || true)
  case "${arch:-$machine}" in
    amd64 | arm64 | x86_64 | aarch64) return 0 ;;
  esac
  {
    echo "layerwatch: this is a 32-bit system (dpkg architecture ${arch:-unknown}, kernel $machine): Layerwatch needs a 64-bit OS."
    echo "layerwatch: onnxruntime, which runs the detector, has no 32-bit ARM (armhf/armv7l) build."
    if [ "$(platform)" = raspios ] || [ "${arch:-}" = armhf ]; then
      echo "layerwatch: flash \"Raspberry Pi OS (64-bit)\" (Lite is enough; Raspberry Pi Imager lists it under"
      echo "layerwatch: Raspberry Pi OS (other)) on a Pi 3, 4, 400, 5, CM4 or Zero 2 W, then run this again."
    fi
    echo "layerwatch: nothing was changed."
  } >&2
  exit 1
}

# what was done, said again at the end
DID=()
did() { DID+=("$*"); }

uninstall() {
  if systemd_running; then
    for unit in "${UNITS[@]}"; do run systemctl disable --now "$unit" 2>/dev/null || true; done
  elif [ -n "$ROOT" ]; then
    for unit in "${UNITS[@]}"; do
      if [ -e "$UNIT_DIR/$unit" ]; then run systemctl --quiet --root="$ROOT" disable "$unit" || true; fi
    done
  fi
  for unit in "${UNITS[@]}"; do run rm -f "$UNIT_DIR/$unit"; done
  run rm -f "$UDEV_DIR/99-layerwatch.rules" "$UPDATE_CMD" "$UPDATE_LIB"
  run rmdir --ignore-fail-on-non-empty "$(dirname "$UPDATE_LIB")" 2>/dev/null || true
  if [ -L "$COMMAND_LINK" ]; then run rm -f "$COMMAND_LINK"; fi
  if systemd_running; then
    run systemctl daemon-reload || true
    run udevadm control --reload 2>/dev/null || true
  fi
  run rm -rf "$PREFIX" "$ROOT/usr/share/layerwatch" "$ROOT/run/layerwatch" "$ROOT/var/lib/layerwatch-update"
  if [ "$KEEP_DATA" = 0 ]; then
    run rm -rf "$CONF_DIR" "$STATE_DIR"
  else
    say "kept $CONF_DIR and $STATE_DIR (--keep-data)"
  fi
  if system_wide && id "$USER_NAME" >/dev/null 2>&1; then run userdel "$USER_NAME" || true; fi
  say "removed"
}

install_user() {
  if [ -n "$WHEELS" ]; then image_user; return 0; fi
  system_wide || return 0
  for group in "${GROUPS_NEEDED[@]}"; do
    getent group "$group" >/dev/null || run groupadd --system "$group"
  done
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    run useradd --system --home-dir /var/lib/layerwatch --no-create-home --shell /usr/sbin/nologin \
      --user-group "$USER_NAME"
  fi
  # exactly the device groups it needs (usermod -G replaces the list: idempotent)
  run usermod -G "$(IFS=,; echo "${GROUPS_NEEDED[*]}")" "$USER_NAME"
}

# --root DIR --wheels W: the user and groups inside the image root (useradd --root)
image_user() {
  local group
  for group in "${GROUPS_NEEDED[@]}" "$USER_NAME"; do
    grep -q "^$group:" "$ROOT/etc/group" || run groupadd --root "$ROOT" --system "$group"
  done
  if ! grep -q "^$USER_NAME:" "$ROOT/etc/passwd"; then
    run useradd --root "$ROOT" --system --home-dir /var/lib/layerwatch --no-create-home \
      --shell /usr/sbin/nologin --gid "$USER_NAME" "$USER_NAME"
  fi
  run usermod --root "$ROOT" -G "$(IFS=,; echo "${GROUPS_NEEDED[*]}")" "$USER_NAME"
}

# --root DIR --wheels W: the venv built inside the image root with its own python3, offline
image_venv() {
  local stage=/tmp/layerwatch-wheels
  run rm -rf "$ROOT$stage"
  run cp -r "$WHEELS" "$ROOT$stage"
  local pins=()
  if [ -n "$CONSTRAINTS" ]; then
    run cp "$CONSTRAINTS" "$ROOT$stage/constraints.txt"
    pins=(-c "$stage/constraints.txt")
  fi
  if [ ! -L "$PREFIX/venv" ] && [ -d "$PREFIX/venv" ]; then migrate_venv; fi
  if [ ! -x "$PREFIX/venv/bin/python" ]; then
    local name version
    version=$(find "$WHEELS" -maxdepth 1 -name 'layerwatch-*.whl' -printf '%f\n' 2>/dev/null | head -n 1 | cut -d- -f2 || true)
    name=$(venv_name "${version:-unknown}")
    run chroot "$ROOT" python3 -m venv "/opt/layerwatch/venvs/$name"
    link_venv "$name"
  fi
  run chroot "$ROOT" /opt/layerwatch/venv/bin/pip install --quiet --no-index --no-cache-dir \
    --find-links "$stage" "${pins[@]}" "layerwatch[litert,cloud]" lgpio
  run rm -rf "$ROOT$stage"
}

# the venv's folder name: VERSION-STAMP (layerwatch-update makes its new venvs the same way)
venv_name() { echo "$1-$(date -u +%Y%m%dT%H%M%SZ)"; }
# /opt/layerwatch/venv -> venvs/NAME, relative (valid in the image root and on the card)
link_venv() {
  run ln -sfn "venvs/$1" "$PREFIX/.venv.switch"
  run mv -T "$PREFIX/.venv.switch" "$PREFIX/venv"
}
# a plain venv folder from an older install becomes venvs/VERSION-STAMP + the symlink
migrate_venv() {
  run env LAYERWATCH_ROOT="$ROOT" bash "$SRC/scripts/update.sh" --migrate
  did "moved the existing venv to $SYS_VENVS/ ($(readlink "$PREFIX/venv" 2>/dev/null || echo '?'))"
}

install_venv() {
  if [ -n "$WHEELS" ]; then image_venv; return 0; fi
  if ! system_wide; then
    say "--root: venv not built (build it inside the image, e.g. in a chroot)"
    return 0
  fi
  local kind site=""
  kind=$(platform)
  say "platform: $kind"
  local packages=(python3-venv python3-pip)
  if [ "$kind" = raspios ]; then
    # the Pi camera and the lgpio backend come from Raspberry Pi OS's apt, seen through the venv
    packages+=(python3-picamera2 python3-lgpio)
    site="--system-site-packages"
  fi
  if ! run apt-get install -y -qq --no-install-recommends "${packages[@]}"; then
    say "apt-get install failed: apt-get update, then again"
    run apt-get update -qq
    run apt-get install -y -qq --no-install-recommends "${packages[@]}"
  fi
  did "apt: ${packages[*]}"
  if [ ! -L "$PREFIX/venv" ] && [ -d "$PREFIX/venv" ]; then migrate_venv; fi
  if [ ! -x "$PREFIX/venv/bin/python" ]; then
    local name
    name=$(venv_name "$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n 1)")
    run install -d "$PREFIX/venvs"
    run python3 -m venv $site "$PREFIX/venvs/$name"
    link_venv "$name"
    did "venv $SYS_VENVS/$name${site:+ ($site)}, $SYS_PREFIX/venv links to it"
  else
    if [ -n "$site" ] && [ -f "$PREFIX/venv/pyvenv.cfg" ]; then
      run sed -i 's/^include-system-site-packages = .*/include-system-site-packages = true/' "$PREFIX/venv/pyvenv.cfg"
    fi
    did "venv: installed into the active one, $SYS_PREFIX/venv -> $(readlink "$PREFIX/venv" 2>/dev/null || echo '?')${site:+ ($site)}"
  fi
  local pins=()
  if [ "$kind" = raspios ]; then
    # picamera2's compiled helpers (simplejpeg, ...) from apt are built for apt's numpy: keep that one
    # (pip would put a numpy 2 into the venv above it on Bookworm, and `import picamera2` would fail)
    local numpy
    numpy=$(dpkg-query -W -f '${Version}' python3-numpy 2>/dev/null | sed 's/^[0-9]*://; s/[-+~].*//' || true)
    if [ -n "$numpy" ]; then
      run install -d "$PREFIX/venv/share"
      if [ "$DRY_RUN" = 0 ]; then echo "numpy==$numpy" >"$PREFIX/venv/share/layerwatch-apt-pins.txt"; fi
      pins=(-c "$PREFIX/venv/share/layerwatch-apt-pins.txt")
      did "numpy kept at apt's $numpy (python3-numpy, which python3-picamera2 is built for)"
    fi
  fi
  run "$PREFIX/venv/bin/pip" install --quiet --upgrade pip
  run "$PREFIX/venv/bin/pip" install --quiet "${pins[@]}" "${SRC}[litert,cloud]"
  did "pip: layerwatch[litert,cloud] from $SRC and its dependencies into the venv"
  if [ "$kind" != raspios ]; then
    # gpiozero's lgpio backend (any gpiochip: Jetson, Debian on a Pi); optional
    if run "$PREFIX/venv/bin/pip" install --quiet lgpio; then did "pip: lgpio (GPIO backend)"
    else say "lgpio not installed: no GPIO backend"; fi
  fi
}

install_files() {
  run install -d "$MODELS" "$UNIT_DIR" "$UDEV_DIR"
  local model
  for model in "$SRC"/models/*.onnx "$SRC"/models/*.json "$SRC"/models/*.npz; do
    [ -e "$model" ] && run install -m 0644 "$model" "$MODELS/"
  done
  run install -d -m 0750 "$CONF_DIR" "$CONF_DIR/credentials"
  if [ ! -f "$CONF_DIR/layerwatch.toml" ]; then
    run install -m 0640 "$SRC/appliance/defaults/layerwatch.example.toml" "$CONF_DIR/layerwatch.toml"
  fi
  # LoadCredential= needs each file to exist; an empty file means "not set"
  local credential
  for credential in "${CREDENTIALS[@]}"; do
    [ -e "$CONF_DIR/credentials/$credential" ] || run install -m 0600 /dev/null "$CONF_DIR/credentials/$credential"
  done
  if system_wide; then run chgrp -R "$USER_NAME" "$CONF_DIR"; fi
  if [ -n "$WHEELS" ]; then run chroot "$ROOT" chgrp -R "$USER_NAME" /etc/layerwatch; fi
  local unit
  for unit in "${UNITS[@]}"; do run install -m 0644 "$SRC/systemd/$unit" "$UNIT_DIR/$unit"; done
  run install -m 0644 "$SRC/udev/99-layerwatch.rules" "$UDEV_DIR/99-layerwatch.rules"
  run install -D -m 0755 "$SRC/scripts/update.sh" "$UPDATE_CMD"
  run install -D -m 0644 "$SRC/scripts/update-bundle.sh" "$UPDATE_LIB"
  # absolute, through the venv symlink: an update (which switches that symlink) moves the command too;
  # a file of the same name that is not a link (someone else's) is left alone
  if [ -L "$COMMAND_LINK" ] || [ ! -e "$COMMAND_LINK" ]; then
    run install -d "$(dirname "$COMMAND_LINK")"
    run ln -sfn "$SYS_PREFIX/venv/bin/layerwatch" "$COMMAND_LINK"
  else
    say "$COMMAND_LINK exists and is not a link: left as it is (use $SYS_PREFIX/venv/bin/layerwatch)"
  fi
  did "units ${UNITS[*]}, udev rule 99-layerwatch.rules, models, config skeleton $SYS_CONF (kept when there)"
  did "update command /usr/local/sbin/layerwatch-update (docs/install.md), the command /usr/local/bin/layerwatch"
}

enable_units() {
  if [ -n "$ROOT" ]; then
    run systemctl --quiet --root="$ROOT" enable "${UNITS[@]}" ||
      say "systemctl --root could not enable the units (enable them in the image)"
    return 0
  fi
  if ! systemd_running; then
    say "systemd is not running: enable ${UNITS[*]} yourself"
    return 0
  fi
  run udevadm control --reload
  run udevadm trigger --subsystem-match=gpio --subsystem-match=pwm --subsystem-match=video4linux \
    --subsystem-match=media --subsystem-match=dma_heap --subsystem-match=vchiq || true
  run systemctl daemon-reload
  run systemctl enable "${UNITS[@]}"
  run systemctl restart layerwatch-fan.service  # cooling first; the detector after the config check
}

if [ "$ACTION" = uninstall ]; then
  uninstall
  exit 0
fi
if system_wide; then check_64bit; fi
install_user
install_venv
install_files
enable_units
if [ ${#DID[@]} -gt 0 ]; then
  say "done:"
  for line in "${DID[@]}"; do say "  - $line"; done
fi
say "installed. Edit $CONF_DIR/layerwatch.toml, check it with"
say "  layerwatch check-config      (/usr/local/bin/layerwatch, a link to $SYS_PREFIX/venv/bin/layerwatch)"
say "then: systemctl restart layerwatch && journalctl -fu layerwatch"
