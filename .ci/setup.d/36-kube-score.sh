#!/usr/bin/env bash
# kube-score (github.com/zegl/kube-score), the external linter `make test` runs on every ci
# values render of the chart (tests/chart/test_kube_score.py). Built from the Go module proxy
# into its own cache directory, ~/.cache/burstguard/tools/kube-score-<version>/kube-score;
# a present binary is never rebuilt. The version is pinned here and in tests/chart/tools.py.
set -euo pipefail

KUBE_SCORE_VERSION="${KUBE_SCORE_VERSION:-v1.20.0}"
XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
TOOLS="${BURSTGUARD_TOOLS:-$XDG_CACHE_HOME/burstguard/tools}"
dir="$TOOLS/kube-score-$KUBE_SCORE_VERSION"

command -v go >/dev/null || { echo "kube-score: go not found"; exit 1; }
if [ -x "$dir/kube-score" ]; then
  echo "kube-score: $KUBE_SCORE_VERSION cached at $dir/kube-score"
  exit 0
fi
echo "kube-score: building $KUBE_SCORE_VERSION from the module proxy"
start=$SECONDS
rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
CGO_ENABLED=0 GOBIN="$dir.tmp" GOFLAGS=-mod=mod \
  nice -n 10 go install -trimpath -ldflags "-s -w -X main.version=$KUBE_SCORE_VERSION" \
  "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "kube-score: built in $((SECONDS - start)) s -> $dir/kube-score"
"$dir/kube-score" version
