#!/usr/bin/env bash
# Local control plane for the `cluster` test layer, `burstguard dev-cluster` and the demo:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok built from the
# Go module proxy at the versions in tests/cluster/kube/versions.env, cached in
# ${BURSTGUARD_KUBE_CACHE:-~/.cache/burstguard/kube}/<version>/ and reused when present.
# Cold: ~1400 CPU-seconds, 15-30 min on 2 cores; warm: a no-op.
set -euo pipefail
exec "$(dirname "$0")/../../tests/cluster/kube/build.sh"
