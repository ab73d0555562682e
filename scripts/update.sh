#!/usr/bin/env bash
# Update Layerwatch from a wheel bundle (scripts/make-update-bundle.sh), keeping /etc/layerwatch and
# /var/lib/layerwatch as they are, with a rollback when the new version does not start. Installed as
# /usr/local/sbin/layerwatch-update by scripts/install.sh; run as root:
#
#   layerwatch-update BUNDLE          BUNDLE: layerwatch-update.tar or its unpacked folder
#   layerwatch-update --expect-sha256 HEX BUNDLE   ... and the .tar must have this SHA-256
#   layerwatch-update --rollback      back to the previous venv (one is kept) and restart
#   layerwatch-update --status        the venvs, the active one, a pending boot update
#   layerwatch-update --migrate       a plain /opt/layerwatch/venv folder -> venvs/NAME + symlink
#   layerwatch-update --boot-apply    (SD image, layerwatch-update.service, before layerwatch.service)
#                                     apply /boot/firmware/layerwatch-update.tar, verdict deferred
#   layerwatch-update --boot-confirm  (SD image, layerwatch-update-confirm.service, after it) the
#                                     verdict: confirm the new venv, or switch back and restart
#
# Layout: each version in its own venv /opt/layerwatch/venvs/VERSION-STAMP; /opt/layerwatch/venv is
# a relative symlink to the active one (every unit's ExecStart= goes through it). An update:
#  1. verifies the bundle: MANIFEST, every file listed in SHA256SUMS and matching it, one
#     layerwatch wheel (with --expect-sha256, the .tar itself too);
#  2. makes a NEW venv beside the active one: mode "full" (every wheel in the bundle): a fresh venv,
#     pip --no-index with the bundle's constraints; mode "reuse" (only the project's wheel): a copy of
#     the active venv (hard links: no extra room), the wheel reinstalled, and pip confirms that the
#     installed packages satisfy its requirements (else: make a full bundle);
#  3. runs `layerwatch --version` and `layerwatch check-config` of the NEW venv on the current config;
#  4. switches the symlink atomically (ln -s to a temporary name, mv -T over the link);
#  5. restarts layerwatch.service (when it was running) and waits, at most
#     LAYERWATCH_UPDATE_START_TIMEOUT s (180), for READY (Type=notify), then
#     LAYERWATCH_UPDATE_SETTLE_S s (10) in which it must stay active without a restart;
#  6. on failure: the symlink back, layerwatch.service restarted on the old venv, the new venv
#     removed, exit 3. On success the previous venv is kept (--rollback) and older ones removed.
# Nothing in /etc/layerwatch or /var/lib/layerwatch is written. Every step is said on stdout (the
# journal under systemd) and the outcome is appended to /var/lib/layerwatch-update/history.log.
#
# Exit status: 0 updated (or nothing to do), 1 refused (nothing changed), 2 usage, 3 the new version
# failed and the old one runs again, 4 the old one did not start again either.
#
# Environment (tests): LAYERWATCH_ROOT (a prefix for every path), LAYERWATCH_BOOT_DIR (the boot
# partition, default /boot/firmware), LAYERWATCH_PYTHON (the interpreter for a fresh venv, default
# the active venv's base python, else python3), LAYERWATCH_UPDATE_FAULT (stop at a step:
# before-switch, after-link; for the interrupted-switch test).
set -euo pipefail
umask 022

ROOT=${LAYERWATCH_ROOT:-}
SYS_PREFIX=/opt/layerwatch
PREFIX=$ROOT$SYS_PREFIX
VENVS=$PREFIX/venvs
LINK=$PREFIX/venv
CONFIG=$ROOT/etc/layerwatch/layerwatch.toml
WORK=$ROOT/var/lib/layerwatch-update
BOOT=${LAYERWATCH_BOOT_DIR:-$ROOT/boot/firmware}
BOOT_BUNDLE=$BOOT/layerwatch-update.tar
BOOT_RESULT=$BOOT/layerwatch-update.result.txt
UNIT=layerwatch.service
START_TIMEOUT=${LAYERWATCH_UPDATE_START_TIMEOUT:-180}
SETTLE_S=${LAYERWATCH_UPDATE_SETTLE_S:-10}
FAULT=${LAYERWATCH_UPDATE_FAULT:-}

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; }
say() { echo "layerwatch-update: $*"; }
# journal priorities (warning, err) when the output goes to the journal (a unit), plain on a terminal
if [ -n "${JOURNAL_STREAM:-}" ]; then P_WARN="<4>" P_ERR="<3>"; else P_WARN="" P_ERR=""; fi
warn() { echo "${P_WARN}layerwatch-update: $*"; }
err() { echo "${P_ERR}layerwatch-update: $*" >&2; }
# one line per outcome, kept across updates (and on the boot partition for an update from there)
history() { install -d "$WORK"; echo "$(date -u +%FT%TZ) $*" >>"$WORK/history.log"; }
refuse() {
  rm -rf "$WORK/bundle" "$WORK/incoming.tar"
  err "refused: $*"
  history "refused: $*"
  result "refused: $*; nothing changed"
  exit 1
}
# the outcome on the boot partition, for a card updated without SSH (only for --boot-apply/-confirm)
RESULT_TO_BOOT=0
result() {
  if [ "$RESULT_TO_BOOT" = 1 ] && [ -d "$BOOT" ]; then
    echo "$(date -u +%FT%TZ) $*" >>"$BOOT_RESULT" || true
  fi
}

# --- the venv layout ------------------------------------------------------------------------------
active_name() {
  [ -L "$LINK" ] || return 0
  basename "$(readlink "$LINK")"
}
previous_name() { if [ -f "$WORK/previous" ]; then cat "$WORK/previous"; fi; }
# the layerwatch version installed in venv folder $1 (its dist-info), or "unknown"
venv_version() {
  local info
  info=$(find "$1"/lib/python3*/site-packages -maxdepth 1 -name 'layerwatch-*.dist-info' 2>/dev/null | head -n 1)
  if [ -n "$info" ]; then
    info=$(basename "$info" .dist-info)
    echo "${info#layerwatch-}"
  else
    echo unknown
  fi
}
fresh_name() {
  local name base
  base="$1-$(date -u +%Y%m%dT%H%M%SZ)"
  name=$base
  local n=1
  while [ -e "$VENVS/$name" ]; do name="$base-$n"; n=$((n + 1)); done
  echo "$name"
}
regex_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|#]/\\&/g'; }
# the text files of venv $1 (bin/ scripts' #! lines, activate, pyvenv.cfg) name it as $2 (its old
# path, as the system sees it; a LAYERWATCH_ROOT prefix before it stays); make them name $1. sed -i
# writes a new file: a hard-linked original elsewhere is not changed.
repath() {
  local dir=$1 old=$2 new file pattern
  new=${dir#"$ROOT"}
  pattern="$(regex_quote "$old")([/\"' ]|\$)"
  # (pipes, no process substitution: it needs /dev/fd, which a bare chroot lacks)
  find "$dir/bin" "$dir/pyvenv.cfg" -maxdepth 1 -type f -print0 2>/dev/null |
    { xargs -0 -r grep -lIF -- "$old" 2>/dev/null || true; } |
    while IFS= read -r file; do sed -i -E "s#$pattern#$new\\1#g" "$file"; done || true
}
# switch the symlink to venv $1 in one rename: a crash leaves either the old or the new link
switch_to() {
  ln -sfn "venvs/$1" "$PREFIX/.venv.switch"
  if [ "$FAULT" = after-link ]; then err "fault injected after the temporary link"; exit 99; fi
  mv -T "$PREFIX/.venv.switch" "$LINK"
  sync
}
# remove every venv but the active and the previous one, and what an interrupted run left
prune() {
  local active previous dir
  active=$(active_name)
  previous=$(previous_name)
  rm -f "$PREFIX/.venv.switch"
  [ -d "$VENVS" ] || return 0
  for dir in "$VENVS"/* "$VENVS"/.[!.]*; do
    [ -e "$dir" ] || continue
    case "$(basename "$dir")" in
      "$active" | "$previous") ;;
      *) say "removing $(basename "$dir")"; rm -rf "$dir" ;;
    esac
  done
}

# a plain venv folder at /opt/layerwatch/venv becomes venvs/VERSION-migrated + the symlink
migrate() {
  if [ -L "$LINK" ]; then return 0; fi
  if [ ! -d "$LINK" ]; then return 0; fi
  local name
  name=$(fresh_name "$(venv_version "$LINK")")
  install -d "$VENVS"
  mv "$LINK" "$VENVS/$name"
  repath "$VENVS/$name" "$SYS_PREFIX/venv"
  ln -sfn "venvs/$name" "$PREFIX/.venv.switch"
  mv -T "$PREFIX/.venv.switch" "$LINK"
  say "migrated the venv to $SYS_PREFIX/venvs/$name ($SYS_PREFIX/venv links to it)"
}

# --- systemd --------------------------------------------------------------------------------------
unit_prop() { systemctl show -p "$1" --value "$UNIT" 2>/dev/null || true; }
unit_active() { [ "$(systemctl is-active "$UNIT" 2>/dev/null || true)" = active ]; }
systemd_here() { [ -n "$ROOT" ] || [ -d /run/systemd/system ]; }
# layerwatch.service READY (it is Type=notify: active means READY=1 came) and still active, with no
# restart, SETTLE_S seconds later
settled() {
  local restarts waited=0
  unit_active || return 1
  restarts=$(unit_prop NRestarts)
  while [ "$waited" -lt "$SETTLE_S" ]; do
    sleep 1
    waited=$((waited + 1))
    unit_active || return 1
  done
  [ "$(unit_prop NRestarts)" = "$restarts" ]
}
# (re)start layerwatch.service and judge it
start_and_judge() {
  systemctl reset-failed "$UNIT" 2>/dev/null || true
  local started
  started=$(date +%s)
  if ! timeout "$START_TIMEOUT" systemctl restart "$UNIT"; then
    warn "$UNIT did not become READY ($(unit_prop ActiveState), after $(($(date +%s) - started)) s)"
    return 1
  fi
  say "$UNIT READY after $(($(date +%s) - started)) s; watching it for ${SETTLE_S} s"
  settled
}

# --- the bundle -----------------------------------------------------------------------------------
BUNDLE_DIR=""
declare -A MANIFEST=()
# unpack (a .tar) and verify bundle $1; sets BUNDLE_DIR, MANIFEST, WHEEL
verify_bundle() {
  local given=$1 expect=$2 dir
  if [ -f "$given" ]; then
    if [ -n "$expect" ]; then
      local have
      have=$(sha256sum "$given" | cut -d' ' -f1)
      [ "$have" = "$expect" ] || refuse "$given has SHA-256 $have, expected $expect"
    fi
    rm -rf "$WORK/bundle"
    install -d "$WORK/bundle"
    tar -xf "$given" -C "$WORK/bundle" --no-same-owner --no-same-permissions ||
      refuse "$given is not a readable tar file"
    dir=$(find "$WORK/bundle" -mindepth 1 -maxdepth 2 -name MANIFEST -printf '%h\n' | head -n 1)
    [ -n "$dir" ] || refuse "$given has no MANIFEST (not a layerwatch update bundle)"
  elif [ -d "$given" ]; then
    [ -z "$expect" ] || refuse "--expect-sha256 needs the .tar file, not a folder"
    dir=$(cd "$given" && pwd)
  else
    refuse "no bundle at $given"
  fi
  [ -f "$dir/MANIFEST" ] || refuse "$given has no MANIFEST"
  [ -f "$dir/SHA256SUMS" ] || refuse "$given has no SHA256SUMS"
  local key value
  while IFS='=' read -r key value; do
    case "$key" in '' | '#'*) continue ;; esac
    MANIFEST[$key]=$value
  done <"$dir/MANIFEST"
  [ "${MANIFEST[format]:-}" = 1 ] || refuse "unknown bundle format '${MANIFEST[format]:-}' (this script reads format 1)"
  # every file but SHA256SUMS itself is listed, and each matches
  local listed unlisted
  listed=$(awk '{ sub(/^\*/, "", $2); print $2 }' "$dir/SHA256SUMS" | sed 's#^\./##' | sort)
  echo "$listed" >"$WORK/.listed"
  unlisted=$(cd "$dir" && find . -type f ! -name SHA256SUMS | sed 's#^\./##' | sort | comm -23 - "$WORK/.listed")
  rm -f "$WORK/.listed"
  [ -z "$unlisted" ] || refuse "files not in SHA256SUMS: $(echo "$unlisted" | tr '\n' ' ')"
  local bad
  if ! bad=$(cd "$dir" && sha256sum --check --strict --quiet SHA256SUMS 2>&1); then
    refuse "checksum mismatch: $(echo "$bad" | tr '\n' ' ')"
  fi
  local wheels=("$dir"/wheels/layerwatch-*.whl)
  if [ ${#wheels[@]} != 1 ] || [ ! -f "${wheels[0]}" ]; then
    refuse "the bundle needs exactly one layerwatch-*.whl in wheels/"
  fi
  WHEEL=${wheels[0]}
  case "${MANIFEST[mode]:-}" in
    full | reuse) ;;
    *) refuse "MANIFEST mode must be full or reuse, not '${MANIFEST[mode]:-}'" ;;
  esac
  if [ "${MANIFEST[mode]}" = full ]; then
    local arch want
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    want=${MANIFEST[arch]:-}
    case "$arch/$want" in
      amd64/amd64 | x86_64/amd64 | arm64/arm64 | aarch64/arm64) ;;
      *) refuse "the bundle's wheels are for ${want:-?}, this system is $arch (make one with --arch)" ;;
    esac
    local python have_py
    python=$(base_python)
    have_py=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "${MANIFEST[python]:-}" = "$have_py" ] ||
      refuse "the bundle's wheels are for Python ${MANIFEST[python]:-?}, this system has $have_py (make one with --python $have_py)"
  fi
  BUNDLE_DIR=$dir
  say "bundle verified: layerwatch ${MANIFEST[version]:-?}, mode ${MANIFEST[mode]}, $(find "$dir/wheels" -name '*.whl' | wc -l) wheel(s), checksums match"
}

# the interpreter a fresh venv is made from: the active venv's base python
base_python() {
  if [ -n "${LAYERWATCH_PYTHON:-}" ]; then echo "$LAYERWATCH_PYTHON"; return; fi
  local home=""
  [ -f "$LINK/pyvenv.cfg" ] && home=$(sed -n 's/^home *= *//p' "$LINK/pyvenv.cfg")
  if [ -n "$home" ] && [ -x "$ROOT$home/python3" ] && [ -z "$ROOT" ]; then echo "$home/python3"; else echo python3; fi
}

# the distributions installed in venv $1, one normalized name a line (pip, setuptools, wheel left out)
dists() {
  [ -n "$1" ] || return 0
  find "$1"/lib/python3*/site-packages -maxdepth 1 -name '*.dist-info' -printf '%f\n' 2>/dev/null |
    sed 's/-[^-]*\.dist-info$//' | tr 'A-Z_.' 'a-z--' | grep -vxE 'pip|setuptools|wheel' | sort -u || true
}
# what the image put into venv $1's site-packages beside pip (no RECORD names it: Debian's libcamera
# and prctl as symlinks, the pykms stand-in): the same into the fresh venv $2
carry_unowned() {
  local old new entry name
  [ -n "$1" ] || return 0
  old=$(find "$1"/lib/python3*/site-packages -maxdepth 0 2>/dev/null | head -n 1)
  new=$(find "$2"/lib/python3*/site-packages -maxdepth 0 2>/dev/null | head -n 1)
  [ -n "$old" ] && [ -n "$new" ] && [ "$(basename "$(dirname "$old")")" = "$(basename "$(dirname "$new")")" ] || return 0
  local owned
  owned=$(cat "$old"/*.dist-info/RECORD 2>/dev/null | cut -d, -f1 | cut -d/ -f1 | sed 's/\.py$//' | sort -u)
  for entry in "$old"/* "$old"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=$(basename "$entry")
    case "$name" in __pycache__ | *.dist-info) continue ;; esac
    grep -qxF "${name%.py}" <<<"$owned" && continue
    [ -e "$new/$name" ] || [ -L "$new/$name" ] && continue
    cp -a "$entry" "$new/$name"
    say "carried over from the active venv: $name"
  done
}

# make venv $1 from the verified bundle; any failure: remove it and refuse
build_venv() {
  local name=$1 dir=$VENVS/$1 active=$2 spec=${MANIFEST[requirement]:-layerwatch[litert,cloud]}
  local pip=("$dir/bin/python" -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check
    --find-links "$BUNDLE_DIR/wheels")
  install -d "$VENVS"
  if [ "${MANIFEST[mode]}" = full ]; then
    local site=()
    if grep -qs '^include-system-site-packages *= *true' "$LINK/pyvenv.cfg"; then site=(--system-site-packages); fi
    say "new venv $name (fresh; ${site[*]:-no system site packages})"
    "$(base_python)" -m venv "${site[@]}" "$dir" || { rm -rf "$dir"; refuse "python3 -m venv failed"; }
    local pins=() extra=()
    [ -f "$BUNDLE_DIR/constraints.txt" ] && pins=(-c "$BUNDLE_DIR/constraints.txt")
    # Raspberry Pi OS (install.sh): apt's numpy, which apt's picamera2 is built for, stays the venv's
    local apt_pins=$LINK/share/layerwatch-apt-pins.txt
    if [ -f "$apt_pins" ]; then
      install -D -m 0644 "$apt_pins" "$dir/share/layerwatch-apt-pins.txt"
      pins+=(-c "$dir/share/layerwatch-apt-pins.txt")
    fi
    compgen -G "$BUNDLE_DIR/wheels/lgpio-*.whl" >/dev/null && extra=(lgpio)
    if ! "${pip[@]}" "${pins[@]}" "$spec @ file://$WHEEL" "${extra[@]}"; then
      rm -rf "$dir"
      refuse "pip could not install the bundle's wheels into a new venv (above)"
    fi
    # every package the active venv has (the arm64 image's picamera2 and its modules, ...), from the bundle
    local missing=() lacking
    dists "$dir" >"$WORK/.dists-new"
    lacking=$(dists "${active:+$VENVS/$active}" | comm -23 - "$WORK/.dists-new")
    rm -f "$WORK/.dists-new"
    [ -z "$lacking" ] || mapfile -t missing <<<"$lacking"
    if [ ${#missing[@]} -gt 0 ]; then
      say "also from the bundle, as the active venv has them: ${missing[*]}"
      if ! "${pip[@]}" "${pins[@]}" --no-deps "${missing[@]}"; then
        rm -rf "$dir"
        refuse "the active venv has ${missing[*]}, which the bundle lacks (make-update-bundle.sh --full adds lgpio and, for arm64, the camera's packages)"
      fi
    fi
    [ -z "$active" ] || carry_unowned "$VENVS/$active" "$dir"
  else
    if [ -z "$active" ] || [ ! -d "$VENVS/$active" ]; then refuse "a reuse bundle needs an active venv to copy"; fi
    say "new venv $name (a hard-linked copy of $active, the project's wheel reinstalled)"
    cp -al "$VENVS/$active" "$dir"
    repath "$dir" "$SYS_PREFIX/venvs/$active"
    if ! "${pip[@]}" --no-deps --force-reinstall "$WHEEL"; then
      rm -rf "$dir"
      refuse "pip could not install $(basename "$WHEEL") (above)"
    fi
    # the wheel's requirements (and its extras') are met by what the copy already has
    if ! "${pip[@]}" "$spec==${MANIFEST[version]}"; then
      rm -rf "$dir"
      refuse "the new version needs packages the current venv lacks (above): make a full bundle (make-update-bundle.sh --full)"
    fi
  fi
  local version
  version=$("$dir/bin/layerwatch" --version 2>&1) || { rm -rf "$dir"; refuse "the new venv's 'layerwatch --version' failed: $version"; }
  say "new venv answers: $version"
  if [ -f "$CONFIG" ]; then
    local said
    if ! said=$("$dir/bin/layerwatch" check-config --config "$CONFIG" 2>&1); then
      echo "$said"
      rm -rf "$dir"
      refuse "the new version rejects the current /etc/layerwatch/layerwatch.toml (above): kept the running version"
    fi
    say "check-config with the new version: ${said##*$'\n'}"
  else
    say "no /etc/layerwatch/layerwatch.toml: check-config skipped"
  fi
}

# --- the commands ---------------------------------------------------------------------------------
# verify, build and switch; $1 the bundle, $2 an expected SHA-256 of it; sets NEW and OLD
prepare() {
  migrate
  prune  # what an interrupted run left
  OLD=$(active_name)
  verify_bundle "$1" "$2"
  NEW=$(fresh_name "${MANIFEST[version]:-unknown}")
  build_venv "$NEW" "$OLD"
  if [ "$FAULT" = before-switch ]; then err "fault injected before the switch"; exit 99; fi
  [ -z "$OLD" ] || echo "$OLD" >"$WORK/previous"
  # at boot: the marker first, so a power cut after the switch still gets a verdict (or a rollback)
  if [ "$RESULT_TO_BOOT" = 1 ]; then
    printf 'NEW=%q\nOLD=%q\n' "$NEW" "$OLD" >"$WORK/pending"
    echo 0 >"$WORK/boot-attempts"
    sync
  fi
  switch_to "$NEW"
  rm -rf "$WORK/bundle"
  say "switched $SYS_PREFIX/venv: ${OLD:-none} -> $NEW"
}

# back from NEW to OLD after a failed start; exit 3 (old one READY again) or 4
roll_back() {
  local why=$1
  err "$why: rolling back to ${OLD:-nothing}"
  if [ -z "$OLD" ] || [ ! -d "$VENVS/$OLD" ]; then
    history "update to $NEW failed ($why), no previous venv to go back to"
    result "update to $NEW failed ($why); no previous venv to go back to"
    exit 4
  fi
  # stopped first: an automatic restart of the new version pending would otherwise start (and then be
  # restarted again) beside ours (measured: 20 s more to READY under emulation)
  timeout "$START_TIMEOUT" systemctl stop "$UNIT" 2>/dev/null || true
  switch_to "$OLD"
  rm -f "$WORK/previous" "$WORK/pending"
  systemctl try-restart layerwatch-fan.service 2>/dev/null || true
  local outcome
  if start_and_judge; then
    outcome="the new version $NEW failed ($why); rolled back to $OLD, which is READY"
    rm -rf "${VENVS:?}/$NEW"
    err "$outcome"
    history "$outcome"
    result "$outcome"
    exit 3
  fi
  outcome="the new version $NEW failed ($why); rolled back to $OLD, which did not start either (journalctl -u $UNIT)"
  rm -rf "${VENVS:?}/$NEW"
  err "$outcome"
  history "$outcome"
  result "$outcome"
  exit 4
}

confirmed() {
  local how=$1
  rm -f "$WORK/pending" "$WORK/boot-attempts"
  prune
  local outcome
  outcome="updated to $NEW (layerwatch $(venv_version "$VENVS/$NEW")): $how; previous: ${OLD:-none} (layerwatch-update --rollback)"
  say "$outcome"
  history "$outcome"
  result "$outcome"
}

cmd_update() {
  local was_active=0
  if systemd_here && unit_active; then was_active=1; fi
  prepare "$1" "$2"
  if ! systemd_here; then
    confirmed "systemd is not running: not restarted"
    return 0
  fi
  if [ "$was_active" = 0 ]; then
    confirmed "$UNIT was not running and was not started (systemctl start $UNIT)"
    return 0
  fi
  systemctl try-restart layerwatch-fan.service 2>/dev/null || true
  if start_and_judge; then
    confirmed "$UNIT READY and stayed up ${SETTLE_S} s"
  else
    roll_back "$UNIT did not stay READY"
  fi
}

cmd_rollback() {
  OLD=$(previous_name)
  NEW=$(active_name)
  if [ -z "$OLD" ] || [ ! -d "$VENVS/$OLD" ]; then refuse "no previous venv to roll back to"; fi
  switch_to "$OLD"
  echo "$NEW" >"$WORK/previous"
  say "switched $SYS_PREFIX/venv back: $NEW -> $OLD"
  history "rolled back by hand: $NEW -> $OLD"
  if systemd_here && unit_active; then
    systemctl try-restart layerwatch-fan.service 2>/dev/null || true
    start_and_judge || { err "$OLD did not stay READY either (journalctl -u $UNIT)"; exit 4; }
    say "$OLD is READY"
  fi
}

cmd_status() {
  local active previous dir mark
  active=$(active_name)
  previous=$(previous_name)
  echo "venv: $SYS_PREFIX/venv -> ${active:-(not a symlink: layerwatch-update --migrate)}"
  for dir in "$VENVS"/*/; do
    [ -d "$dir" ] || continue
    dir=${dir%/}
    mark=""
    [ "$(basename "$dir")" = "$active" ] && mark=" (active)"
    [ "$(basename "$dir")" = "$previous" ] && mark=" (previous)"
    echo "  $(basename "$dir"): layerwatch $(venv_version "$dir")$mark"
  done
  [ -f "$WORK/pending" ] && echo "pending boot verdict: $(cat "$WORK/pending")"
  [ -f "$WORK/history.log" ] && tail -n 5 "$WORK/history.log"
  return 0
}

# at boot, before layerwatch.service: apply the bundle dropped on the boot partition, verdict later
cmd_boot_apply() {
  RESULT_TO_BOOT=1
  install -d "$WORK"
  if [ -f "$WORK/pending" ]; then
    # a pending update from an earlier boot that never got its verdict (power cut, hang): one more
    # try, then back to the previous venv before the service starts
    local attempts
    attempts=$(($(cat "$WORK/boot-attempts" 2>/dev/null || echo 0) + 1))
    echo "$attempts" >"$WORK/boot-attempts"
    # shellcheck disable=SC1091  # the marker is ours: NEW=... OLD=...
    . "$WORK/pending"
    if [ "$attempts" -ge 2 ] && [ -n "${OLD:-}" ] && [ -d "$VENVS/$OLD" ]; then
      switch_to "$OLD"
      rm -f "$WORK/pending" "$WORK/boot-attempts" "$WORK/previous"
      rm -rf "${VENVS:?}/$NEW"
      local outcome="the update to $NEW got no verdict in $attempts boots; rolled back to $OLD"
      err "$outcome"
      history "$outcome"
      result "$outcome"
    fi
  fi
  [ -f "$BOOT_BUNDLE" ] || return 0
  say "update bundle found on the boot partition: $(du -m "$BOOT_BUNDLE" | cut -f1) MB"
  local staged=$WORK/incoming.tar
  # off the boot partition first: a bundle that fails is not tried again at every boot
  mv -f "$BOOT_BUNDLE" "$staged"
  sync
  prepare "$staged" ""
  rm -f "$staged"
  say "$NEW is switched in; layerwatch-update-confirm.service judges its start"
}

# at boot, after layerwatch.service's start job: READY (and still up SETTLE_S s later) or roll back
cmd_boot_confirm() {
  RESULT_TO_BOOT=1
  [ -f "$WORK/pending" ] || return 0
  # shellcheck disable=SC1091
  . "$WORK/pending"
  if [ "$(unit_prop ConditionResult)" = no ]; then
    confirmed "$UNIT was not started (no configuration): only check-config judged it"
    return 0
  fi
  local waited=0 state
  while :; do
    state=$(systemctl is-active "$UNIT" 2>/dev/null || true)
    case "$state" in active | failed | inactive) break ;; esac
    # failed once already, waiting for its automatic restart: that is the verdict
    case "$(unit_prop SubState)" in auto-restart*) break ;; esac
    [ "$waited" -lt "$START_TIMEOUT" ] || break
    sleep 1
    waited=$((waited + 1))
  done
  if [ "$state" = active ] && settled; then
    confirmed "$UNIT READY and stayed up ${SETTLE_S} s"
  else
    roll_back "$UNIT is $(systemctl is-active "$UNIT" 2>/dev/null || true) ($(unit_prop Result)), not READY"
  fi
}

ACTION=update
EXPECT=""
BUNDLE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rollback) ACTION=rollback ;;
    --status) ACTION=status ;;
    --migrate) ACTION=migrate ;;
    --boot-apply) ACTION=boot-apply ;;
    --boot-confirm) ACTION=boot-confirm ;;
    --expect-sha256) EXPECT=$(echo "${2:?--expect-sha256 needs a hex digest}" | tr 'A-F' 'a-f'); shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "layerwatch-update: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) BUNDLE=$1 ;;
  esac
  shift
done
if [ "$ACTION" = update ] && [ -z "$BUNDLE" ]; then
  echo "layerwatch-update: a BUNDLE (layerwatch-update.tar or its folder) is needed (see --help)" >&2
  exit 2
fi
if [ "$ACTION" = status ]; then cmd_status; exit 0; fi
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  echo "layerwatch-update: run as root" >&2
  exit 1
fi
install -d "$WORK"
exec 9>"$WORK/lock"
flock -n 9 || { echo "layerwatch-update: another update is running ($WORK/lock)" >&2; exit 1; }
case "$ACTION" in
  update) cmd_update "$BUNDLE" "$EXPECT" ;;
  rollback) cmd_rollback ;;
  migrate) migrate ;;
  boot-apply) cmd_boot_apply ;;
  boot-confirm) cmd_boot_confirm ;;
esac
