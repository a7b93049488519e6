#!/usr/bin/env bash
# The real node's kubelet (`burstguard dev-cluster up --real-node`, tests/realnode), built from
# the same k8s.io/kubernetes module as the control plane into its own cache
# ${BURSTGUARD_KUBELET_CACHE:-~/.cache/burstguard/kubelet}/<version>/ and reused when present.
# Runs after 30-kube.sh, whose compiled packages it mostly reuses.
set -euo pipefail
exec nice -n 10 "$(dirname "$0")/../../tests/cluster/kubelet/build.sh"
