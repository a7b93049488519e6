#!/usr/bin/env bash
# Incident lab: fetch the Debian 6.1 cloud kernel and build the guest (kernel, initramfs,
# tools disk) into ~/.cache/burstguard/lab/<release>/. Cached: a second run only checks stamps.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "lab: building the 6.1 guest (cached in ~/.cache/burstguard/lab)"
PYTHONPATH=. python3 -m burstguard.lab.building
