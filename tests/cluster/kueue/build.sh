#!/usr/bin/env bash
# Build (or reuse) a pinned Kueue release: the controller-manager binary `kueue` and the CRDs
# it serves (config/components/crd/bases of the same module), into
#   ${BURSTGUARD_TOOLS:-~/.cache/burstguard/tools}/kueue-<KUEUE_VERSION>/{kueue,crds/}
# sigs.k8s.io/kueue has no replace lines in its go.mod, so `go install module@version` builds
# it with its own pinned k8s.io/* libraries, outside every other module graph. The build runs
# under `nice` (a shared 2-core machine). A present binary with the same version is reused.
#
# Usage: tests/cluster/kueue/build.sh [--force]     (called by .ci/setup.d/45-kueue.sh)
set -euo pipefail
KUEUE_VERSION="${KUEUE_VERSION:-v0.17.0}"
tools="${BURSTGUARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/burstguard/tools}"
dest="$tools/kueue-$KUEUE_VERSION"
log() { printf '[kueue-build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ "${1:-}" != "--force" ] && [ -x "$dest/kueue" ] && [ -f "$dest/crds/.done" ]; then
  log "reusing $dest"
  exit 0
fi
command -v go >/dev/null || { log "ERROR: no 'go' on PATH (needed to build kueue)"; exit 1; }
log "building kueue $KUEUE_VERSION into $dest (cold: ~10-20 min on 2 cores under nice)"
start=$SECONDS
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/crds"
src="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src/config/components/crd/bases" ] || { log "ERROR: no CRDs in $src"; exit 1; }
cp "$src"/config/components/crd/bases/*.yaml "$dest.tmp/crds/"
CGO_ENABLED=0 GOBIN="$dest.tmp" GOFLAGS=-mod=mod nice -n 10 \
  go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
  "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"
touch "$dest.tmp/crds/.done"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
log "kueue $KUEUE_VERSION built in $((SECONDS - start)) s -> $dest/kueue"
