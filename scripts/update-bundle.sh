#!/usr/bin/env bash
# The bundle half of layerwatch-update (scripts/update.sh sources this file; installed by
# scripts/install.sh as /usr/local/lib/layerwatch/update-bundle.sh): verify a bundle (its MANIFEST,
# SHA256SUMS over every file, one layerwatch wheel, the architecture and Python of a full bundle) and
# make the NEW venv from it (full: a fresh venv from the bundle's wheels; reuse: a hard-linked copy of
# the active venv with the project's wheel reinstalled), then check it with `layerwatch --version`
# and `layerwatch check-config` on the current config. Any failure removes the new venv and refuses
# (exit 1, nothing switched). Uses update.sh's settings (WORK, VENVS, LINK, CONFIG, ROOT) and its
# say/refuse/repath; defines verify_bundle and build_venv (and BUNDLE_DIR, MANIFEST, WHEEL).
# shellcheck shell=bash disable=SC2034  # BUNDLE_DIR and WHEEL are read by update.sh

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

