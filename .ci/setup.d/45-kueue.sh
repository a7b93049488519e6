#!/usr/bin/env bash
# Kueue for the `cluster` test layer (forecasting Workloads pending admission, pacing pods
# Kueue admits): the kueue controller-manager and its CRDs from the Go module proxy at the
# version pinned in tests/cluster/kueue/build.sh, cached in
# ${BURSTGUARD_TOOLS:-~/.cache/burstguard/tools}/kueue-<version>/ and reused when present.
set -euo pipefail
exec "$(dirname "$0")/../../tests/cluster/kueue/build.sh"
