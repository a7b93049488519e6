#!/usr/bin/env bash
# Build (or reuse) the kubelet for the real node of `burstguard dev-cluster up --real-node`, at
# the KUBE_VERSION pinned in ../kube/versions.env, into
#   ${BURSTGUARD_KUBELET_CACHE:-~/.cache/burstguard/kubelet}/<KUBE_VERSION>/kubelet
# Its own module (go.mod here), cache directory and stamp: the control plane's build
# (../kube/build.sh) and its stamp are untouched, so adding the kubelet never rebuilds them.
# Both builds share Go's module and build caches, so after the control plane most packages are
# already compiled.
#
# Usage: tests/cluster/kubelet/build.sh [--force]   (called by .ci/setup.d/32-kubelet.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
# shellcheck source=../kube/versions.env
. ../kube/versions.env

cache_root="${BURSTGUARD_KUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/burstguard/kubelet}"
dest="${cache_root}/${KUBE_VERSION}"
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=${minor} \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=${minor} \
 -X k8s.io/client-go/pkg/version.gitTreeState=clean"
stamp="$( { echo "$KUBE_VERSION"; cat go.mod go.sum cmd/kubelet/main.go; echo "$ldflags"; } | sha256sum | cut -c1-16)"

log() { printf '[kubelet-build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ "${1:-}" != "--force" ] && [ -x "${dest}/kubelet" ] && [ "$(cat "${dest}/.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "reusing ${dest}/kubelet (stamp ${stamp})"
  exit 0
fi

command -v go >/dev/null || { log "ERROR: no 'go' on PATH; Go >= $(sed -n 's/^go //p' go.mod) is needed"; exit 1; }
log "building kubelet ${KUBE_VERSION} with $(go version | cut -d' ' -f3) into ${dest}"
start=$(date +%s)
cpu_start="$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)"
mkdir -p "$dest"
work="$(mktemp -d "${dest}/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0

go mod download
total="$(go list -deps ./cmd/kubelet | wc -l)"
vlog="${work}/kubelet.v.log"
go build -v -trimpath -ldflags "$ldflags" -o "${work}/kubelet" ./cmd/kubelet 2> "$vlog" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  kill -0 "$pid" 2>/dev/null && log "  $(grep -cv '^#\|^go: ' "$vlog" || true)/${total} packages compiled, $(( $(date +%s) - start )) s elapsed"
done
if ! wait "$pid"; then
  grep -v '^[a-zA-Z0-9._/-]*$' "$vlog" | tail -40 >&2
  log "ERROR: building the kubelet failed"
  exit 1
fi
mv -f "${work}/kubelet" "${dest}/kubelet"
echo "$stamp" > "${dest}/.stamp"
"${dest}/kubelet" --version
cpu_end="$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)"
log "done in $(( $(date +%s) - start )) s wall, $(( (cpu_end - cpu_start) / $(getconf CLK_TCK) )) CPU-s: $(du -sh "${dest}/kubelet" | cut -f1)"
