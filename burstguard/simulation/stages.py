"""kwok stages for a simulated fleet: pods stay "starting" until the model says they started.

kwok's default ("fast") pod stages make a bound pod Running at once and complete Job pods at
once. For the simulated fleet the node-memory model decides how long each start takes
(concurrency, reclaim, stalls), so this writes a copy of the pinned kwok's stages with two
changes:

* ``pod-ready`` additionally requires the pod annotation ``burstguard.io/simulated-start:
  done``, which nothing sets: kwok never starts a pod. The fleet process writes the started
  status itself when the model finishes the start (``k8s.simnodes.mark_started``). Until then
  the pod is bound with no started container: exactly what the operator counts as starting.
* ``pod-complete`` (Job pods) waits ``DEFAULT_RUN_MS`` (or the pod's
  ``pod-complete.stage.kwok.x-k8s.io/delay`` annotation, kwok's own convention) before the
  pod succeeds, so pods hold their memory while they run.

Node stages are unchanged. The file also carries a ``KwokConfiguration`` raising kwok's pod
stage parallelism from 4 to ``POD_PARALLELISM``: with 4, kwok applied only ~10 pod stages a
second on a busy 2-core host, so a 600-pod burst spent most of its time in kwok's queue.
Use :class:`StagedBinaries` to start a devcluster with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from burstguard.devcluster import binaries

STARTED_ANNOTATION: Final = "burstguard.io/simulated-start"
"""Pod annotation the fleet writes when the model finished the start (value ``done``)."""
STARTED_VALUE: Final = "done"
DEFAULT_RUN_MS: Final = 20_000
"""How long a simulated Job pod runs before it succeeds, milliseconds."""
RUN_ANNOTATION: Final = "pod-complete.stage.kwok.x-k8s.io/delay"
"""kwok's per-pod override of the run time (a duration such as ``30s``)."""
POD_PARALLELISM: Final = 32
"""kwok pod stages applied in parallel (kwok's default is 4)."""


def configuration() -> dict[str, Any]:
    """kwok's own configuration for a simulated fleet."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        # kwok does not default a configuration it reads: every parallelism must be given.
        "options": {
            "podPlayStageParallelism": POD_PARALLELISM,
            "nodePlayStageParallelism": 16,
            "nodeLeaseParallelism": 32,
            "podsOnNodeSyncParallelism": 1,
            "enablePodsOnNodeSyncListPager": True,
            "enablePodsOnNodeSyncStreamWatch": False,
            "enableDebuggingHandlers": True,
            "enableProfilingHandler": False,
            "enableContentionProfiling": False,
        },
    }


def simulated(stages: list[dict[str, Any]], run_ms: int = DEFAULT_RUN_MS) -> list[dict[str, Any]]:
    """The stages with the two changes above (pure)."""
    out = []
    for stage in stages:
        name = (stage.get("metadata") or {}).get("name")
        spec = dict(stage.get("spec") or {})
        if name == "pod-ready":
            selector = dict(spec.get("selector") or {})
            selector["matchExpressions"] = [
                *(selector.get("matchExpressions") or []),
                {
                    "key": f'.metadata.annotations["{STARTED_ANNOTATION}"]',
                    "operator": "In",
                    "values": [STARTED_VALUE],
                },
            ]
            spec["selector"] = selector
        elif name == "pod-complete":
            spec["delay"] = {
                "durationMilliseconds": run_ms,
                "durationFrom": {"expressionFrom": f'.metadata.annotations["{RUN_ANNOTATION}"]'},
            }
        out.append({**stage, "spec": spec})
    return out


def write(source: Path, target: Path, run_ms: int = DEFAULT_RUN_MS) -> Path:
    """Read kwok's stages from ``source``, write the simulated ones to ``target``."""
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    text = "# kwok stages for burstguard's SIMULATED fleet (see burstguard/simulation/stages.py)\n"
    text += yaml.safe_dump_all([configuration(), *simulated(docs, run_ms)], sort_keys=False)
    target.write_text(text)
    return target


@dataclass(frozen=True)
class StagedBinaries(binaries.Binaries):
    """The pinned binaries, with kwok reading another stages file."""

    stages: Path = Path()
    """The stages file kwok is started with."""

    @property
    def kwok_stages(self) -> Path:
        """The simulated stages."""
        return self.stages


def staged(
    bins: binaries.Binaries, directory: Path, run_ms: int = DEFAULT_RUN_MS
) -> StagedBinaries:
    """Binaries whose kwok runs the simulated stages (written into ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = write(bins.kwok_stages, directory / "kwok-simulated-stages.yaml", run_ms)
    return StagedBinaries(bins.directory, target)
