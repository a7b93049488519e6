#!/usr/bin/env bash
# Build (or reuse) the local control-plane binaries: kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl (one multi-call binary `kube` plus symlinks), etcd and kwok, at the
# versions pinned in versions.env, into
#   ${BURSTGUARD_KUBE_CACHE:-~/.cache/burstguard/kube}/<KUBE_VERSION>/
# A stamp (hash of every build input) makes a second run a no-op; inputs that change rebuild.
#
# Usage: tests/cluster/kube/build.sh [--force]     (called by .ci/setup.d/30-kube.sh, `make kube`)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
# shellcheck source=versions.env
. ./versions.env

cache_root="${BURSTGUARD_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/burstguard/kube}"
dest="${cache_root}/${KUBE_VERSION}"
binaries=(kube kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
stages=kwok-stages.yaml
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=${minor} \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=${minor} \
 -X k8s.io/client-go/pkg/version.gitTreeState=clean"
# The stamp covers what the binaries are made of: pinned versions, module graph, main, flags.
stamp="$( { cat versions.env go.mod go.sum cmd/kube/main.go; echo "$kube_ldflags"; } | sha256sum | cut -c1-16)"

log() { printf '[kube-build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# kwok's own binary loads no stages unless given some; kwokctl passes its embedded defaults.
# Write the same set (node initialize + lease heartbeat; pod ready/complete/delete) from the
# pinned kwok module, so the stages always match the kwok binary.
write_stages() {
  local dir
  dir="$(cd "$dest" && go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$dir/kustomize/stage" ] || { log "ERROR: kwok ${KWOK_VERSION} module has no kustomize/stage"; exit 1; }
  {
    echo "# kwok ${KWOK_VERSION} default stages (sigs.k8s.io/kwok kustomize/stage/*), written by build.sh"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$dir/kustomize/stage/$f"
    done
  } > "${dest}/${stages}.tmp"
  mv -f "${dest}/${stages}.tmp" "${dest}/${stages}"
}

all_present() {
  local b
  for b in "${binaries[@]}"; do [ -x "${dest}/${b}" ] || return 1; done
  [ "$(cat "${dest}/.stamp" 2>/dev/null)" = "$stamp" ]
}

if [ "${1:-}" != "--force" ] && all_present; then
  [ -f "${dest}/${stages}" ] || write_stages
  log "reusing ${dest} (stamp ${stamp})"
  exit 0
fi

command -v go >/dev/null || { log "ERROR: no 'go' on PATH; Go >= $(sed -n 's/^go //p' go.mod) is needed"; exit 1; }
log "building Kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION} with $(go version | cut -d' ' -f3) into ${dest}"
log "a cold build needs ~1400 CPU-seconds (15-30 min on 2 cores) and ~4.5 GB of Go caches; later runs reuse the binaries"
start=$(date +%s)
mkdir -p "$dest"
work="$(mktemp -d "${dest}/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

export CGO_ENABLED=0

# Go prints nothing while it compiles; report how many packages are done every 30 s.
go_with_progress() {  # name, total-packages (or ?), go arguments...
  local name="$1" total="$2"; shift 2
  local vlog="${work}/${name}.v.log"
  : > "$vlog"
  go "$@" 2> "$vlog" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && log "  ${name}: $(grep -cv '^#\|^go: ' "$vlog" || true)/${total} packages compiled, $(( $(date +%s) - start )) s elapsed"
  done
  if ! wait "$pid"; then
    grep -v '^[a-zA-Z0-9._/-]*$' "$vlog" | tail -40 >&2
    log "ERROR: building ${name} failed (full output in ${vlog})"
    trap - EXIT
    exit 1
  fi
}

log "[1/4] downloading modules (go mod download)"
go mod download
log "[2/4] kube (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
total="$(go list -deps ./cmd/kube | wc -l)"
go_with_progress kube "$total" build -v -trimpath -ldflags "$kube_ldflags" -o "${work}/kube" ./cmd/kube

log "[3/4] etcd ${ETCD_VERSION}"
total="$(go list -deps go.etcd.io/etcd/server/v3 | wc -l)"
go_with_progress etcd "$total" build -v -trimpath -ldflags "-s -w" -o "${work}/etcd" go.etcd.io/etcd/server/v3

log "[4/4] kwok ${KWOK_VERSION}"
# kwok's go.mod has no replace lines and pins its own k8s.io/* libraries, so plain `go install
# module@version` works and keeps them out of this module's graph.
GOBIN="$work" go_with_progress kwok "?" install -v -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
write_stages

for b in kube etcd kwok; do mv -f "${work}/${b}" "${dest}/${b}"; done
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do ln -sfn kube "${dest}/${b}"; done
echo "$stamp" > "${dest}/.stamp"
"${dest}/kube-apiserver" --version
"${dest}/etcd" --version | sed -n 1p  # sed reads to the end: head would SIGPIPE etcd under pipefail
"${dest}/kwok" --version 2>/dev/null | sed -n 1p || true
log "done in $(( $(date +%s) - start )) s: $(du -sh "$dest" | cut -f1) in ${dest}"
