#!/usr/bin/env bash
# Chart tooling for the `chart` test layer: helm and kubeconform, built from the Go module
# proxy (no release tarballs: this machine reaches only the module proxy). Each tool lands in
# ~/.cache/burstguard/tools/<name>-<version>/<name>; a present binary is never rebuilt.
# kubeconform cannot fetch its schemas from GitHub here, so the schema sources come from Go
# modules too, into ~/.cache/burstguard/tools/schemas/: swagger.json of k8s.io/kubernetes (the
# control plane's release) and the CRDs of the optional kinds the chart renders
# (ServiceMonitor, PrometheusRule; cert-manager Certificate, Issuer).
# The versions here are the ones tests/chart/tools.py looks for (a test keeps them in step).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.7.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.21.2}"
KUBE_VERSION="$(sed -n 's/^KUBE_VERSION=//p' "$here/tests/cluster/kube/versions.env")"
XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
TOOLS="${BURSTGUARD_TOOLS:-$XDG_CACHE_HOME/burstguard/tools}"

command -v go >/dev/null || { echo "chart-tools: go not found (needed to build helm/kubeconform)"; exit 1; }

build() {  # build NAME VERSION PACKAGE [LDFLAGS]
  local name=$1 version=$2 pkg=$3 ldflags=${4:-}
  local dir="$TOOLS/$name-$version"
  if [ -x "$dir/$name" ] && [ "$(cat "$dir/.ldflags" 2>/dev/null)" = "$ldflags" ]; then
    echo "chart-tools: $name $version cached at $dir/$name"
    return
  fi
  echo "chart-tools: building $name $version from $pkg (a few minutes on 2 cores)"
  mkdir -p "$dir.tmp"
  local start=$SECONDS
  CGO_ENABLED=0 GOBIN="$dir.tmp" GOFLAGS=-mod=mod \
    go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"
  printf '%s' "$ldflags" > "$dir.tmp/.ldflags"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "chart-tools: $name $version built in $((SECONDS - start)) s -> $dir/$name"
}

# helm's version and its default Kubernetes version come from ldflags, as in helm's Makefile:
# without them `helm version` says v3.x-dev and `helm template` assumes Kubernetes v1.20.0
# (and refuses the chart's kubeVersion >= 1.30). The Kubernetes version is the control plane's.
kube_minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
helm_k8s=""
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_k8s="$helm_k8s -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
build helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION$helm_k8s"
build kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform \
  "-X main.version=$KUBECONFORM_VERSION"

# promql-check: Prometheus' own PromQL parser behind a tiny main (tests/chart/promql), so the
# chart's alert rules and dashboard queries are parsed for real. Cached by a hash of its source.
promql_src="$here/tests/chart/promql"
promql_id="$(cat "$promql_src/main.go" "$promql_src/go.mod" | sha256sum | cut -c1-12)"
promql_dir="$TOOLS/promql-check-$promql_id"
if [ -x "$promql_dir/promql-check" ]; then
  echo "chart-tools: promql-check cached at $promql_dir/promql-check"
else
  echo "chart-tools: building promql-check (github.com/prometheus/prometheus/promql/parser)"
  start=$SECONDS
  mkdir -p "$promql_dir.tmp"
  (cd "$promql_src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$promql_dir.tmp/promql-check" .)
  rm -rf "$promql_dir" && mv "$promql_dir.tmp" "$promql_dir"
  echo "chart-tools: promql-check built in $((SECONDS - start)) s -> $promql_dir/promql-check"
fi

module_dir() {  # module_dir MODULE VERSION -> directory of the module in GOMODCACHE
  GOFLAGS=-mod=mod go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

fetch() {  # fetch DEST MODULE VERSION FILE... (paths inside the module)
  local dest=$1 module=$2 version=$3; shift 3
  if [ -f "$dest/.complete" ]; then
    echo "chart-tools: schema sources from $module $version cached in $dest"
    return
  fi
  echo "chart-tools: fetching schema sources from $module $version"
  local dir; dir="$(module_dir "$module" "$version")"
  [ -n "$dir" ] || { echo "chart-tools: go mod download $module@$version failed"; exit 1; }
  mkdir -p "$dest"
  for f in "$@"; do cp "$dir/$f" "$dest/"; chmod 644 "$dest/$(basename "$f")"; done
  touch "$dest/.complete"
}

fetch "$TOOLS/schemas/kubernetes-$KUBE_VERSION" k8s.io/kubernetes "$KUBE_VERSION" \
  api/openapi-spec/swagger.json
fetch "$TOOLS/schemas/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" \
  github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
  example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
fetch "$TOOLS/schemas/cert-manager-$CERT_MANAGER_VERSION" \
  github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION" \
  deploy/crds/cert-manager.io_certificates.yaml deploy/crds/cert-manager.io_issuers.yaml

"$TOOLS/helm-$HELM_VERSION/helm" version --short
"$TOOLS/kubeconform-$KUBECONFORM_VERSION/kubeconform" -v
