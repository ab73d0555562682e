#!/usr/bin/env bash
# First boot from the FAT partition (layerwatch-bootconfig) and the boot test's console report.
set -euo pipefail
ROOT=$1
systemctl --root="$ROOT" --quiet enable layerwatch-bootconfig.service layerwatch-growroot.service \
  layerwatch-boot-report.service layerwatch-token.path
