#!/usr/bin/env bash
# layerwatch-address.service: write the host name and IPv4/IPv6 addresses to the boot partition's
# layerwatch-address.txt (FAT: readable on the computer that flashed the card) at start and whenever
# an address changes (`ip monitor address`). Written to a temporary file and renamed, and only when
# the text differs, so the card sees a write per change, not per event.
set -euo pipefail
BOOT=${LAYERWATCH_BOOT_DIR:-/boot/firmware}
FILE=$BOOT/layerwatch-address.txt
PORT=${LAYERWATCH_CONSOLE_PORT:-8080}

text() {
  local name line iface family address
  name=$(hostname)
  echo "Layerwatch: http://$name.local:$PORT/ (mDNS; on computers without it, one of the addresses below)"
  echo "host name: $name.local"
  ip -o address show scope global | while read -r line; do
    read -r _ iface family address _ <<<"$line"
    address=${address%/*}
    case "$family" in
      inet) echo "$iface: $address  http://$address:$PORT/" ;;
      inet6) echo "$iface: $address  http://[$address]:$PORT/" ;;
    esac
  done
}

write() {
  local new
  new=$(text)
  if [ -f "$FILE" ] && [ "$(tr -d '\r' <"$FILE")" = "$new" ]; then return 0; fi
  printf '%s\n' "$new" | sed 's/$/\r/' >"$FILE.new"  # CRLF: Windows' Notepad shows the lines
  sync "$FILE.new"
  mv -f "$FILE.new" "$FILE"
  echo "layerwatch-address: $FILE: $(text | sed -n '3,$p' | tr '\n' ';')"
}

write
# each event line triggers a comparison; the text is written only when it changed
ip monitor address | while read -r _; do
  sleep 1  # a DHCP lease brings several events within a second
  write
done
