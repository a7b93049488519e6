#!/usr/bin/env bash
# Debian packages the test layers need. Each layer lists its own in .ci/apt-packages.txt.
set -euo pipefail
here="$(dirname "$0")/.."
mapfile -t pkgs < <(grep -v '^\s*#' "$here/apt-packages.txt" | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
