#!/usr/bin/env bash
# The image's first-boot steps, one per subcommand. Lines starting <3>/<4> are journal priorities
# err/warning.
#
#   bootconfig.sh            layerwatch-bootconfig.service, every boot, before layerwatch.service: apply
#                            what a user dropped on the FAT boot partition; each file is removed from the
#                            partition once applied, so nothing secret stays there
#   bootconfig.sh grow-root  layerwatch-growroot.service, once, beside layerwatch.service (not before
#                            it: growing the root costs seconds and the service does not need the room)
#   bootconfig.sh stopped    layerwatch.service's ExecStopPost (as root): exit status 78 means the
#                            configuration is invalid -> state config_error and its status light
#   bootconfig.sh token-copy layerwatch-token.service (layerwatch-token.path: the token file changed)
#                            and every boot: the console's API token to the boot partition's
#                            layerwatch-token.txt
#
# What is applied from the boot partition:
#   layerwatch.toml       moved to /etc/layerwatch/; `layerwatch run` validates it as it starts (the same
#                         check as `layerwatch check-config`: every bad key path in the journal, exit 78)
#   credentials/NAME      moved to /etc/layerwatch/credentials/NAME (systemd LoadCredential=)
#   hostname              one line: the new host name ([a-z0-9-], at most 63 characters)
#   authorized_keys       SSH public key(s) for root; SSH is switched on with them
#   wifi.txt              ssid=..., psk=... (passphrase), country=XX -> wpa_supplicant@wlan0
#   wpa_supplicant.conf   used as is for wpa_supplicant@wlan0 (the old Raspberry Pi convention)
#   layerwatch-token.txt  stays: the console's API token, copied there once it exists; a token the
#                         user wrote into it (16-512 printable characters, no spaces) replaces the
#                         service's at the next boot, anything else is refused with a warning
#
# The outcome for the appliance is in /run/layerwatch-image/state: configured, config_error or
# unconfigured.
set -euo pipefail

BOOT=${LAYERWATCH_BOOT_DIR:-/boot/firmware}
CONF=/etc/layerwatch
STATE_DIR=/run/layerwatch-image
STAMP=/var/lib/layerwatch-image/root-grown
TOKEN_TXT=layerwatch-token.txt
TOKEN_STATE=/var/lib/layerwatch/api_token       # made by layerwatch.service at its first start
TOKEN_CREDENTIAL=$CONF/credentials/api_token    # when not empty, it is the token (LoadCredential=)
TOKEN_COPIED=/var/lib/layerwatch-image/token-copied  # sha256 of the text last written to the partition

say() { echo "layerwatch-bootconfig: $*"; }
state() { install -d "$STATE_DIR"; echo "$1" >"$STATE_DIR/state"; }
# the LED code for a card that cannot watch (layerwatch-status-light@.service, Conflicts=layerwatch.service)
status_light() { systemctl start --no-block "layerwatch-status-light@$1.service"; }

credentials() {
  [ -d "$BOOT/credentials" ] || return 0
  local file
  for file in "$BOOT"/credentials/*; do
    [ -f "$file" ] || continue
    install -m 0640 -g layerwatch "$file" "$CONF/credentials/$(basename "$file")"
    say "credential $(basename "$file") moved to $CONF/credentials/"
  done
  rm -rf "$BOOT/credentials"
}

config() {
  if [ -f "$BOOT/layerwatch.toml" ]; then
    install -m 0640 -g layerwatch "$BOOT/layerwatch.toml" "$CONF/layerwatch.toml.new"
    rm -f "$BOOT/layerwatch.toml"
    sync
    mv -f "$CONF/layerwatch.toml.new" "$CONF/layerwatch.toml"
    say "layerwatch.toml moved from the boot partition to $CONF/layerwatch.toml"
  fi
  if [ ! -f "$CONF/layerwatch.toml" ]; then
    echo "<4>layerwatch-bootconfig: unconfigured: no layerwatch.toml (put one on the boot partition;" \
      "example: /usr/share/layerwatch/layerwatch.example.toml); layerwatch.service is not started"
    state unconfigured
    status_light unconfigured
    return 0
  fi
  # not checked here: a second Python start would cost 6 s of the boot under emulation (more on a Pi 3)
  # before the service could start; `layerwatch run` checks the file as it starts, and on exit status
  # 78 `bootconfig.sh stopped` sets the state and the status light
  state configured
}

# layerwatch.service stopped (ExecStopPost=+, so as root; systemd sets EXIT_CODE and EXIT_STATUS)
stopped() {
  if [ "${EXIT_CODE:-}" = exited ] && [ "${EXIT_STATUS:-}" = 78 ]; then
    # kept in place for the user to correct; exit status 78 is never restarted (RestartPreventExitStatus)
    echo "<3>layerwatch-bootconfig: config_error: $CONF/layerwatch.toml is invalid (its key paths are in" \
      "the journal above: journalctl -u layerwatch); correct it, or put a new one on the boot partition"
    state config_error
    status_light config_error
  fi
}

host_name() {
  [ -f "$BOOT/hostname" ] || return 0
  local name
  name=$(tr -d ' \r\n' <"$BOOT/hostname" | tr '[:upper:]' '[:lower:]')
  rm -f "$BOOT/hostname"
  if ! [[ "$name" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
    echo "<3>layerwatch-bootconfig: hostname '$name' ignored: use a-z, 0-9 and '-' (at most 63)"
    return 0
  fi
  echo "$name" >/etc/hostname
  sed -i "s/^127\.0\.1\.1\s.*/127.0.1.1\t$name/" /etc/hosts
  hostname "$name"
  say "hostname set to $name"
}

ssh_key() {
  [ -f "$BOOT/authorized_keys" ] || return 0
  install -d -m 0700 /root/.ssh
  install -m 0600 "$BOOT/authorized_keys" /root/.ssh/authorized_keys
  rm -f "$BOOT/authorized_keys"
  ssh-keygen -A  # this card's own host keys (the image has none)
  systemctl enable ssh.service
  systemctl start --no-block ssh.service
  say "SSH key installed for root; ssh.service enabled"
}

wifi() {
  local target=/etc/wpa_supplicant/wpa_supplicant-wlan0.conf
  if [ -f "$BOOT/wpa_supplicant.conf" ]; then
    install -m 0600 "$BOOT/wpa_supplicant.conf" "$target"
    rm -f "$BOOT/wpa_supplicant.conf"
  elif [ -f "$BOOT/wifi.txt" ]; then
    local ssid="" psk="" country="" key value
    while IFS='=' read -r key value; do
      value=${value%$'\r'}
      case "$key" in
        ssid) ssid=$value ;; psk) psk=$value ;; country) country=$value ;;
      esac
    done <"$BOOT/wifi.txt"
    rm -f "$BOOT/wifi.txt"
    if [ -z "$ssid" ] || [ ${#psk} -lt 8 ]; then
      echo "<3>layerwatch-bootconfig: wifi.txt ignored: it needs ssid= and psk= (8 to 63 characters)"
      return 0
    fi
    umask 077
    {
      echo "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev"
      echo "update_config=1"
      [ -z "$country" ] || echo "country=$country"
      wpa_passphrase "$ssid" "$psk" | grep -v '^\s*#psk='  # only the hashed key is kept
    } >"$target"
    umask 022
  else
    return 0
  fi
  systemctl enable wpa_supplicant@wlan0.service
  systemctl start --no-block wpa_supplicant@wlan0.service
  say "Wi-Fi configured in $target (wpa_supplicant@wlan0)"
}

# the file that holds the token the service uses: the credential when it is set, else the state file
token_file() {
  if [ -s "$TOKEN_CREDENTIAL" ] && [ -n "$(tr -d ' \r\n' <"$TOKEN_CREDENTIAL")" ]; then
    echo "$TOKEN_CREDENTIAL"
  else
    echo "$TOKEN_STATE"
  fi
}

# a token the user wrote into the boot partition's layerwatch-token.txt (it differs from the text this
# script last wrote there) replaces the service's; before layerwatch.service starts
token_from_boot() {
  [ -f "$BOOT/$TOKEN_TXT" ] || return 0
  local text target
  if [ -f "$TOKEN_COPIED" ] && [ "$(sha256sum <"$BOOT/$TOKEN_TXT" | cut -d' ' -f1)" = "$(cat "$TOKEN_COPIED")" ]; then
    return 0  # unchanged since it was copied there
  fi
  text=$(head -n 1 "$BOOT/$TOKEN_TXT" | tr -d '\r' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
  if ! [[ "$text" =~ ^[!-~]{16,512}$ ]]; then
    echo "<4>layerwatch-bootconfig: $TOKEN_TXT on the boot partition ignored: a token is 16 to 512" \
      "printable characters without spaces (it has ${#text}); the console's token stays as it was"
    rm -f "$TOKEN_COPIED"  # written again below with the token in use
    return 0
  fi
  target=$(token_file)
  if [ -f "$target" ] && [ "$(tr -d ' \r\n' <"$target")" = "$text" ]; then return 0; fi
  if [ "$target" = "$TOKEN_STATE" ]; then
    install -d -o layerwatch -g layerwatch -m 0750 "$(dirname "$TOKEN_STATE")"
    install -m 0600 -o layerwatch -g layerwatch /dev/null "$TOKEN_STATE.new"
  else
    install -m 0640 -g layerwatch /dev/null "$TOKEN_CREDENTIAL.new"
  fi
  printf '%s\n' "$text" >"$target.new"
  sync "$target.new"
  mv -f "$target.new" "$target"
  say "API token from the boot partition's $TOKEN_TXT applied to $target"
}

# the token in use to the boot partition's layerwatch-token.txt (readable on the computer that
# flashed the card: FAT has no permissions), when it exists and the copy there differs
token_copy() {
  local source text sum
  source=$(token_file)
  [ -s "$source" ] || return 0
  text=$(head -n 1 "$source" | tr -d ' \r\n')
  [ -n "$text" ] || return 0
  if [ -f "$BOOT/$TOKEN_TXT" ] && [ "$(head -n 1 "$BOOT/$TOKEN_TXT" | tr -d ' \r\n')" = "$text" ]; then
    sum=$(sha256sum <"$BOOT/$TOKEN_TXT" | cut -d' ' -f1)
  else
    printf '%s\r\n' "$text" >"$BOOT/$TOKEN_TXT.new"
    sync "$BOOT/$TOKEN_TXT.new"
    mv -f "$BOOT/$TOKEN_TXT.new" "$BOOT/$TOKEN_TXT"
    sum=$(sha256sum <"$BOOT/$TOKEN_TXT" | cut -d' ' -f1)
    say "API token copied to the boot partition's $TOKEN_TXT (from $source)"
  fi
  install -d "$(dirname "$TOKEN_COPIED")"
  echo "$sum" >"$TOKEN_COPIED"
}

grow_root() {
  [ -f "$STAMP" ] && return 0
  local part disk number
  part=$(findmnt -no SOURCE /)
  disk=/dev/$(lsblk -no PKNAME "$part" | head -n 1)
  number=$(cat "/sys/class/block/$(basename "$part")/partition")
  if growpart "$disk" "$number" >/dev/null 2>&1; then
    resize2fs "$part" >/dev/null 2>&1
    say "root partition $part grown to fill $disk: $(df -h --output=size / | tail -n 1 | tr -d ' ')"
  else
    say "root partition $part already fills $disk"
  fi
  install -d "$(dirname "$STAMP")"
  touch "$STAMP"
}

case "${1:-apply}" in
  apply)
    credentials
    host_name
    ssh_key
    wifi
    token_from_boot
    token_copy
    config
    ;;
  grow-root) grow_root ;;
  stopped) stopped ;;
  token-copy) token_copy ;;
  *) echo "usage: bootconfig.sh [apply|grow-root|stopped|token-copy]" >&2; exit 2 ;;
esac
