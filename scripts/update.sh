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
# shellcheck disable=SC2034  # read by update-bundle.sh
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

# the bundle's checks and the new venv: scripts/update-bundle.sh, beside this script in a checkout,
# /usr/local/lib/layerwatch/update-bundle.sh where scripts/install.sh put it
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
BUNDLE_LIB=$HERE/update-bundle.sh
[ -f "$BUNDLE_LIB" ] || BUNDLE_LIB=$ROOT/usr/local/lib/layerwatch/update-bundle.sh
if [ ! -f "$BUNDLE_LIB" ]; then
  echo "layerwatch-update: $BUNDLE_LIB is missing: install again (scripts/install.sh)" >&2
  exit 1
fi
# shellcheck source=/dev/null  # followed at run time (update-bundle.sh)
. "$BUNDLE_LIB"

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
