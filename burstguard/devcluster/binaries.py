"""Where the control-plane binaries live and which versions they are.

The binaries are built from Go modules by ``tests/cluster/kube/build.sh`` (run by ``make setup``)
into ``$BURSTGUARD_KUBE_CACHE/<KUBE_VERSION>/`` (default ``~/.cache/burstguard/kube``). This
module only finds them: a build needs a Go toolchain and a quarter of an hour, which is a setup
step, never a side effect of starting a cluster. ``KUBE_VERSION`` is pinned here and in
``tests/cluster/kube/versions.env``; a unit test keeps the two equal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

KUBE_VERSION: Final = "v1.36.3"
"""k8s.io/kubernetes release the binaries are built from (also names the cache folder)."""

CACHE_ENV: Final = "BURSTGUARD_KUBE_CACHE"
"""Environment variable overriding the cache root (default ``~/.cache/burstguard/kube``)."""

BUILD_HINT: Final = (
    "run `make setup` (or `make kube`, i.e. tests/cluster/kube/build.sh) to build them"
)
"""What to tell someone whose binaries are missing."""

ETCD: Final = "etcd"
APISERVER: Final = "kube-apiserver"
CONTROLLER_MANAGER: Final = "kube-controller-manager"
SCHEDULER: Final = "kube-scheduler"
KUBECTL: Final = "kubectl"
KWOK: Final = "kwok"
NAMES: Final = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KUBECTL, KWOK)
"""Every executable the build installs."""

KWOK_STAGES: Final = "kwok-stages.yaml"
"""kwok's default node and pod stages, extracted from the pinned kwok module by build.sh."""


class MissingBinariesError(RuntimeError):
    """The cache folder lacks some binaries; the message says how to build them."""


@dataclass(frozen=True)
class Binaries:
    """The folder holding one version's binaries."""

    directory: Path
    """``<cache root>/<KUBE_VERSION>``."""

    def path(self, name: str) -> Path:
        """Absolute path of one executable (one of ``NAMES``)."""
        return self.directory / name

    @property
    def kubectl(self) -> Path:
        """The kubectl built with the control plane (Debian's 1.20 is too old for it)."""
        return self.path(KUBECTL)

    @property
    def kwok_stages(self) -> Path:
        """kwok configuration holding its default node and pod stages."""
        return self.directory / KWOK_STAGES

    def missing(self) -> list[str]:
        """Names of the files that are absent or not executable, empty when complete."""
        absent = [n for n in NAMES if not os.access(self.path(n), os.X_OK)]
        if not self.kwok_stages.is_file():
            absent.append(KWOK_STAGES)
        return absent


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """The cache root: ``$BURSTGUARD_KUBE_CACHE`` or ``$XDG_CACHE_HOME/burstguard/kube``."""
    e = os.environ if env is None else env
    if e.get(CACHE_ENV):
        return Path(e[CACHE_ENV]).expanduser()
    xdg = e.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "burstguard" / "kube"


def default(env: Mapping[str, str] | None = None) -> Binaries:
    """The binaries of the pinned version, whether or not they are built yet."""
    return Binaries(cache_root(env) / KUBE_VERSION)


def locate(env: Mapping[str, str] | None = None) -> Binaries:
    """The binaries of the pinned version; raises ``MissingBinariesError`` if any is absent."""
    found = default(env)
    absent = found.missing()
    if absent:
        raise MissingBinariesError(
            f"local control-plane binaries missing in {found.directory}: {', '.join(absent)}; "
            f"{BUILD_HINT}"
        )
    return found
