"""Where the chart layer's tools and schema sources are, and which versions.

helm and kubeconform are built from the Go module proxy by ``.ci/setup.d/35-chart-tools.sh``
into ``~/.cache/burstguard/tools/<name>-<version>/``; the same script copies the schema
sources kubeconform needs offline into ``~/.cache/burstguard/tools/schemas/``: the
``swagger.json`` of the ``k8s.io/kubernetes`` module (same release as the local control plane)
and the CRDs of the optional kinds the chart renders (Prometheus Operator, cert-manager).
The versions are pinned here and in the script; a test keeps the two equal.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
"""Root of the repository."""

SETUP_SCRIPT: Final = REPO / ".ci" / "setup.d" / "35-chart-tools.sh"
"""The script that builds the tools (and pins their versions too)."""

HELM_VERSION: Final = "v3.21.4"
"""helm.sh/helm/v3 release."""
KUBECONFORM_VERSION: Final = "v0.7.0"
"""github.com/yannh/kubeconform release."""
PROMETHEUS_OPERATOR_VERSION: Final = "v0.85.0"
"""github.com/prometheus-operator/prometheus-operator: source of the ServiceMonitor and
PrometheusRule CRDs."""
CERT_MANAGER_VERSION: Final = "v1.21.2"
"""github.com/cert-manager/cert-manager: source of the Certificate and Issuer CRDs."""

KUBE_SCORE_VERSION: Final = "v1.20.0"
"""github.com/zegl/kube-score release (built by ``.ci/setup.d/36-kube-score.sh``)."""
KUBE_SCORE_SETUP: Final = REPO / ".ci" / "setup.d" / "36-kube-score.sh"
"""The script that builds kube-score."""


def kube_score() -> Path:
    """Where kube-score is (``MissingToolError`` when it is not built)."""
    path = tools_root() / f"kube-score-{KUBE_SCORE_VERSION}" / "kube-score"
    if not os.access(path, os.X_OK):
        raise MissingToolError(f"kube-score missing: {path}; run `bash {KUBE_SCORE_SETUP}`")
    return path


SETUP_HINT: Final = "run `make setup` (or `bash .ci/setup.d/35-chart-tools.sh`) to build them"
"""What to tell someone whose tools are missing."""


class MissingToolError(RuntimeError):
    """A tool or schema source is absent; the message says how to get it."""


def tools_root() -> Path:
    """``$BURSTGUARD_TOOLS`` or ``~/.cache/burstguard/tools``."""
    override = os.environ.get("BURSTGUARD_TOOLS")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "burstguard" / "tools"


@dataclass(frozen=True)
class Tools:
    """Paths of everything the chart layer runs or reads."""

    helm: Path
    """helm binary."""
    kubeconform: Path
    """kubeconform binary."""
    promql_check: Path
    """Prometheus' PromQL parser behind a tiny main (``tests/chart/promql``)."""
    swagger: Path
    """Kubernetes OpenAPI v2 document of the control plane's release."""
    extra_crds: tuple[Path, ...]
    """CRD files of the optional third-party kinds the chart renders."""


def kube_version() -> str:
    """The control plane's release (``tests/cluster/kube/versions.env``)."""
    text = (REPO / "tests" / "cluster" / "kube" / "versions.env").read_text()
    match = re.search(r"^KUBE_VERSION=(\S+)$", text, re.MULTILINE)
    if match is None:
        raise MissingToolError("KUBE_VERSION not found in tests/cluster/kube/versions.env")
    return match.group(1)


PROMQL_SOURCE: Final = REPO / "tests" / "chart" / "promql"
"""Source of promql-check (its build is cached by a hash of main.go and go.mod)."""


def promql_check_id() -> str:
    """The cache key the setup script uses: sha256 of main.go + go.mod, 12 hex digits."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod"):
        digest.update((PROMQL_SOURCE / name).read_bytes())
    return digest.hexdigest()[:12]


def expected() -> Tools:
    """Where the tools should be, whether or not they are built."""
    root = tools_root()
    schemas = root / "schemas"
    return Tools(
        helm=root / f"helm-{HELM_VERSION}" / "helm",
        kubeconform=root / f"kubeconform-{KUBECONFORM_VERSION}" / "kubeconform",
        promql_check=root / f"promql-check-{promql_check_id()}" / "promql-check",
        swagger=schemas / f"kubernetes-{kube_version()}" / "swagger.json",
        extra_crds=tuple(
            sorted((schemas / f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}").glob("*.yaml"))
            + sorted((schemas / f"cert-manager-{CERT_MANAGER_VERSION}").glob("*.yaml"))
        ),
    )


def locate() -> Tools:
    """The tools; raises ``MissingToolError`` naming what is absent."""
    found = expected()
    binaries = (found.helm, found.kubeconform, found.promql_check)
    absent = [str(p) for p in binaries if not os.access(p, os.X_OK)]
    if not found.swagger.is_file():
        absent.append(str(found.swagger))
    if len(found.extra_crds) < 4:
        absent.append(
            "Prometheus Operator / cert-manager CRDs under " + str(found.swagger.parent.parent)
        )
    if absent:
        raise MissingToolError(f"chart tools missing: {', '.join(absent)}; {SETUP_HINT}")
    return found
