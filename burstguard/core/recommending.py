"""Recommendations: policy values and node sysctls mined from a fleet's history, with evidence.

``burstguard recommend`` (DESIGN §2.5) reads per-node history (Prometheus range queries or a
recorded timeline file) and proposes what a cluster operator would otherwise guess: the
per-node start limit, the release rate, the headroom thresholds, and the node sysctls
``vm.watermark_scale_factor`` and ``vm.min_free_kbytes``. Every value comes with the evidence
it rests on (bursts seen, reclaim episodes, pods starting when kswapd woke), or says that it
is a default because the history held no evidence for it.

What the history is read for (each sample: headroom, kswapd scan rate, allocation-stall rate,
pods starting on the node when known):

* a **reclaim episode** is an unbroken run of samples with kswapd scanning;
* a **burst** is a drop of headroom of at least ``BURST_MIN_BYTES`` within ``BURST_WINDOW_S``
  (its size is the demand the node had to absorb); when starting counts are known, the
  burst's pods are the most starting at once during it, and the cost per start is demand/pods;
* the **per-node start limit** is what fits the headroom nodes typically had before bursts
  (10th percentile) at the measured cost per start, capped by one start per core
  (reference/host-6.18: 2 at once on 2 cores cut start time 3-10x, 4 lost the benefit);
* **sysctls**: raising ``watermark_scale_factor`` is proposed only for kernels that are not
  exposed to the shrinker_rwsem stall and only where direct reclaim (allocation stalls) was
  measured during bursts; on exposed kernels it made stalls longer in the lab
  (reference/lab-qemu-6.1: wsf 1000 gave 22 mounts over 1 s vs 0), so it is never proposed
  there. ``min_free_kbytes`` is left at the kernel default (no measurement here showed a
  benefit from changing it).

The timeline file format (``encode_timeline``/``decode_timeline``) is versioned JSON, so a
run of ``burstguard demo`` or a Prometheus export can be replayed offline. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from burstguard.api import names
from burstguard.api import policy as policy_api

TIMELINE_VERSION: Final = 1
BURST_MIN_BYTES: Final = 128 * 2**20
"""Smallest headroom drop counted as a burst, bytes."""
BURST_WINDOW_S: Final = 30.0
"""Longest a burst's headroom drop may take, seconds."""
PAGE_SIZE: Final = 4096
"""Bytes per page: scan rates are pages/s (clean page cache: scanned ≈ reclaimed)."""
SCAN_ACTIVE: Final = 1.0
"""kswapd scan rate above which a sample counts as reclaiming, pages/s."""
MIB: Final = 2**20
WSF_DEFAULT: Final = 10
"""Kernel default of vm.watermark_scale_factor."""
WSF_MAX: Final = 1000
"""Largest watermark_scale_factor the kernel accepts (10 % of memory)."""


class TimelineError(ValueError):
    """A timeline file that cannot be decoded."""


@dataclass(frozen=True)
class Sample:
    """One point of a node's history."""

    at: float
    """Unix seconds."""
    headroom_bytes: float | None
    """Headroom (free − high − reserve), bytes; None when unknown."""
    pgscan_kswapd: float = 0.0
    """kswapd pages scanned per second."""
    allocstall: float = 0.0
    """Allocation stalls (direct reclaim entries) per second."""
    starting: float | None = None
    """Pods starting on the node; None when the source does not know."""
    starts_total: float | None = None
    """Starts completed on the node so far (a counter); None when the source does not know."""


@dataclass(frozen=True)
class NodeHistory:
    """One node's history and facts."""

    node: str
    """Node name."""
    samples: tuple[Sample, ...]
    """Samples in time order."""
    kernel_release: str = ""
    """``uname -r``."""
    shrinker_exposed: bool | None = None
    """Pre-6.7 kernel with the global shrinker lock; None when unknown."""
    cores: float | None = None
    """Allocatable cores; None when unknown."""
    memory_bytes: int | None = None
    """Memory capacity, bytes; None when unknown."""
    simulated: bool = False
    """True when the history comes from the simulated fleet."""


@dataclass(frozen=True)
class Episode:
    """One kswapd reclaim episode on a node."""

    node: str
    """Node name."""
    began: float
    """First reclaiming sample, Unix seconds."""
    ended: float
    """Last reclaiming sample, Unix seconds."""
    pages_scanned: float
    """Pages kswapd scanned in it (rate × sample spacing)."""
    allocstalls: float
    """Allocation stalls in it."""
    starting_at_wake: float | None
    """Pods starting when kswapd woke; None when unknown."""


@dataclass(frozen=True)
class Burst:
    """One burst of demand on a node."""

    node: str
    """Node name."""
    began: float
    """Start of the headroom drop, Unix seconds."""
    headroom_before_bytes: float
    """Headroom before the drop, bytes."""
    demand_bytes: float
    """Memory the burst took: the headroom drop plus what kswapd reclaimed meanwhile, bytes."""
    pods: float | None
    """Starts completed during the burst (from the starts counter); None when unknown."""
    peak_starting: float | None = None
    """Most pods starting at once during the burst; None when unknown."""


@dataclass(frozen=True)
class Evidence:
    """What the recommendations rest on."""

    nodes: int = 0
    """Nodes with history."""
    span_s: float = 0.0
    """Time covered, seconds."""
    bursts: tuple[Burst, ...] = ()
    """Bursts seen."""
    episodes: tuple[Episode, ...] = ()
    """Reclaim episodes seen."""


@dataclass(frozen=True)
class Recommendation:
    """One proposed value."""

    field: str
    """Policy field path (``spec.pacing.maxStartingPerNode``) or sysctl (``vm.…``)."""
    value: Any
    """Proposed value (JSON-able: number, bool or quantity string)."""
    evidence: str
    """Why, in numbers; says "default" when the history held no evidence."""
    nodes: tuple[str, ...] = ()
    """For sysctls: the nodes it applies to (empty: all)."""


@dataclass(frozen=True)
class ExposureRow:
    """One row of the fleet exposure report."""

    node: str
    """Node name."""
    kernel_release: str
    """``uname -r``."""
    exposed: bool | None
    """Verdict (None: unknown)."""
    episodes: int
    """Reclaim episodes seen on it."""
    simulated: bool = False
    """True for simulated nodes."""


@dataclass(frozen=True)
class Report:
    """Everything ``recommend`` prints."""

    recommendations: tuple[Recommendation, ...]
    """Policy values and sysctls."""
    evidence: Evidence
    """The mined history."""
    exposure: tuple[ExposureRow, ...] = field(default_factory=tuple)
    """Fleet exposure report."""


# --- mining -------------------------------------------------------------------------------------


def _spacing(samples: Sequence[Sample], i: int) -> float:
    if len(samples) < 2:
        return 0.0
    j = i + 1 if i + 1 < len(samples) else i
    k = j - 1
    return max(0.0, samples[j].at - samples[k].at)


def episodes(history: NodeHistory) -> tuple[Episode, ...]:
    """kswapd reclaim episodes: unbroken runs of reclaiming samples."""
    found: list[Episode] = []
    run: list[int] = []
    samples = history.samples

    def close() -> None:
        if not run:
            return
        first, last = samples[run[0]], samples[run[-1]]
        found.append(
            Episode(
                node=history.node,
                began=first.at,
                ended=last.at,
                pages_scanned=sum(samples[i].pgscan_kswapd * _spacing(samples, i) for i in run),
                allocstalls=sum(samples[i].allocstall * _spacing(samples, i) for i in run),
                starting_at_wake=first.starting,
            )
        )
        run.clear()

    for i, s in enumerate(samples):
        if s.pgscan_kswapd > SCAN_ACTIVE:
            run.append(i)
        else:
            close()
    close()
    return tuple(found)


def bursts(history: NodeHistory) -> tuple[Burst, ...]:
    """Headroom drops of at least BURST_MIN_BYTES within BURST_WINDOW_S."""
    found: list[Burst] = []
    samples = [s for s in history.samples if s.headroom_bytes is not None]
    i = 0
    while i < len(samples) - 1:
        top = samples[i]
        assert top.headroom_bytes is not None
        low_j, low = i, top.headroom_bytes
        j = i + 1
        while j < len(samples) and samples[j].at - top.at <= BURST_WINDOW_S:
            value = samples[j].headroom_bytes
            assert value is not None
            if value < low:
                low_j, low = j, value
            j += 1
        drop = top.headroom_bytes - low
        if drop >= BURST_MIN_BYTES:
            window = samples[i : low_j + 1]
            during = [s.starting for s in window if s.starting is not None]
            reclaimed = sum(
                window[k].pgscan_kswapd * PAGE_SIZE * (window[k].at - window[k - 1].at)
                for k in range(1, len(window))
            )
            first, last = window[0].starts_total, window[-1].starts_total
            pods = None if first is None or last is None else last - first
            found.append(
                Burst(
                    node=history.node,
                    began=top.at,
                    headroom_before_bytes=top.headroom_bytes,
                    demand_bytes=drop + reclaimed,
                    pods=pods if pods else None,
                    peak_starting=max(during) if during else None,
                )
            )
            # The burst is over once headroom stops falling; start looking after its low.
            i = max(low_j, i + 1)
        else:
            i += 1
    return tuple(found)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty collection."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def _mib_quantity(value_bytes: float, step_mib: int = 64) -> str:
    mib = max(step_mib, math.ceil(value_bytes / MIB / step_mib) * step_mib)
    return f"{mib}Mi"


# --- deciding -----------------------------------------------------------------------------------


def recommend(
    histories: Sequence[NodeHistory],
    *,
    default_cost_bytes: int = policy_api.DEFAULT_POD_STARTUP_MEMORY_BYTES,
    start_seconds: float = 2.0,
) -> Report:
    """Propose policy values and sysctls from the histories (see the module docstring)."""
    all_episodes = tuple(e for h in histories for e in episodes(h))
    all_bursts = tuple(b for h in histories for b in bursts(h))
    times = [s.at for h in histories for s in h.samples]
    evidence = Evidence(
        nodes=len(histories),
        span_s=(max(times) - min(times)) if times else 0.0,
        bursts=all_bursts,
        episodes=all_episodes,
    )
    recs: list[Recommendation] = []

    # Cost of one start: demand per pod where pods are known, else the policy default.
    per_pod = [b.demand_bytes / b.pods for b in all_bursts if b.pods]
    if per_pod:
        cost = percentile(per_pod, 90)
        recs.append(
            Recommendation(
                "spec.pacing.podStartupMemory",
                _mib_quantity(cost),
                f"p90 of memory taken per start (headroom drop + kswapd reclaim) over "
                f"{len(per_pod)} bursts ({percentile(per_pod, 50) / MIB:.0f} MiB median)",
            )
        )
    else:
        cost = float(default_cost_bytes)
        recs.append(
            Recommendation(
                "spec.pacing.podStartupMemory",
                _mib_quantity(cost),
                "default: no burst with a known number of starts in the history",
            )
        )

    # Per-node limit: concurrency is a CPU matter (one start per core, host measurement); the
    # headroom part is the pacer's live budget, so the typical pre-burst headroom is evidence.
    cores = [h.cores for h in histories if h.cores]
    core_cap = max(1, math.floor(min(cores))) if cores else None
    before = [b.headroom_before_bytes for b in all_bursts if b.headroom_before_bytes > 0]
    wake = [e.starting_at_wake for e in all_episodes if e.starting_at_wake]
    why: list[str] = []
    if core_cap:
        why.append(f"one start per core on the smallest node ({core_cap} cores)")
    if before:
        fits = max(1, math.floor(percentile(before, 10) / cost))
        why.append(
            f"p10 headroom before {len(before)} bursts {percentile(before, 10) / MIB:.0f} MiB "
            f"= {fits} starts of {cost / MIB:.0f} MiB without reclaim (the pacer's budget)"
        )
    if wake:
        why.append(
            f"kswapd woke with {percentile(wake, 50):.0f} pods starting "
            f"(median of {len(wake)} episodes)"
        )
    if core_cap:
        limit = core_cap
    elif before:
        limit = min(policy_api.DEFAULT_MAX_STARTING_PER_NODE, fits)
    else:
        limit = policy_api.DEFAULT_MAX_STARTING_PER_NODE
        why.append("default: no bursts and no core counts in the history")
    recs.append(Recommendation("spec.pacing.maxStartingPerNode", limit, "; ".join(why)))
    recs.append(
        Recommendation(
            "spec.pacing.maxStartingPerCore",
            1.0,
            "host measurement: 2 concurrent starts on 2 cores cut start time 3-10x, 4 lost it",
        )
    )
    rate = max(1.0, round(len(histories) * limit / max(start_seconds, 0.1), 1))
    recs.append(
        Recommendation(
            "spec.pacing.releasePerSecond",
            rate,
            f"{len(histories)} nodes x {limit} starts / {start_seconds:g} s per start",
        )
    )
    recs.append(
        Recommendation(
            "spec.pacing.burst",
            max(1, len(histories) * limit),
            "one full round of starts on every node",
        )
    )

    # Headroom rules.
    recs.append(
        Recommendation(
            "spec.headroom.closeOnReclaim",
            True,
            f"{len(all_episodes)} reclaim episodes on {len({e.node for e in all_episodes})} nodes"
            if all_episodes
            else "default: no reclaim episode in the history",
        )
    )
    exposed = [h for h in histories if h.shrinker_exposed]
    if exposed:
        recs.append(
            Recommendation(
                "spec.headroom.lockWaitThreshold",
                "20ms",
                f"{len(exposed)} nodes run kernels exposed to the shrinker_rwsem stall",
            )
        )

    recs.extend(_sysctls(histories, all_bursts, all_episodes, limit, cost))
    exposure = tuple(
        ExposureRow(
            node=h.node,
            kernel_release=h.kernel_release,
            exposed=h.shrinker_exposed,
            episodes=sum(1 for e in all_episodes if e.node == h.node),
            simulated=h.simulated,
        )
        for h in sorted(histories, key=lambda h: (not h.shrinker_exposed, h.node))
    )
    return Report(tuple(recs), evidence, exposure)


def _sysctls(
    histories: Sequence[NodeHistory],
    all_bursts: Sequence[Burst],
    all_episodes: Sequence[Episode],
    limit: int,
    cost: float,
) -> list[Recommendation]:
    recs: list[Recommendation] = []
    stalled = {e.node for e in all_episodes if e.allocstalls > 0}
    exposed = sorted(h.node for h in histories if h.shrinker_exposed)
    raise_on = sorted(
        h.node for h in histories if h.node in stalled and h.shrinker_exposed is False
    )
    if raise_on:
        memory = [h.memory_bytes for h in histories if h.node in raise_on and h.memory_bytes]
        want = limit * cost  # high − min should cover one full round of starts
        wsf = (
            min(WSF_MAX, max(WSF_DEFAULT, math.ceil(want / min(memory) * 10000 / 2)))
            if memory
            else 100
        )
        recs.append(
            Recommendation(
                "vm.watermark_scale_factor",
                wsf,
                f"direct reclaim measured in bursts on {len(raise_on)} unexposed nodes; "
                f"high−min then covers {limit} starts of {cost / MIB:.0f} MiB "
                "(host: wsf 500 cut direct reclaim 90-100 % but reserves ~10 % of memory)",
                tuple(raise_on),
            )
        )
    else:
        recs.append(
            Recommendation(
                "vm.watermark_scale_factor",
                WSF_DEFAULT,
                "keep the default: no direct reclaim measured on unexposed nodes",
            )
        )
    if exposed:
        recs.append(
            Recommendation(
                "vm.watermark_scale_factor",
                WSF_DEFAULT,
                "do not raise on kernels exposed to the shrinker_rwsem stall: in the lab "
                "wsf 1000 made stalls longer (22 mounts over 1 s, holds 2.2-2.7 s)",
                tuple(exposed),
            )
        )
    recs.append(
        Recommendation(
            "vm.min_free_kbytes",
            "kernel default",
            "no measurement showed a benefit from changing it; it also sets the min watermark "
            "every other watermark is built on",
        )
    )
    return recs


# --- policy output ------------------------------------------------------------------------------


def policy_object(report: Report, name: str = "recommended") -> dict[str, Any]:
    """A BurstPolicy in DryRun mode carrying the recommended policy values."""
    spec: dict[str, Any] = {
        "mode": policy_api.MODE_DRY_RUN,
        "pods": {"podSelector": {"matchLabels": {"burstguard.io/pace": "true"}}},
        "pacing": {},
        "headroom": {},
    }
    for rec in report.recommendations:
        if not rec.field.startswith("spec."):
            continue
        _, section, key = rec.field.split(".")
        spec[section][key] = rec.value
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": names.POLICY_KIND,
        "metadata": {
            "name": name,
            "annotations": {"burstguard.io/recommended-by": "burstguard recommend"},
        },
        "spec": spec,
    }


# --- timeline files -----------------------------------------------------------------------------


def encode_timeline(histories: Sequence[NodeHistory], source: str = "") -> str:
    """Serialize histories as the versioned timeline JSON."""
    body = {
        "v": TIMELINE_VERSION,
        "source": source,
        "nodes": [
            {
                "node": h.node,
                "kernel_release": h.kernel_release,
                "shrinker_exposed": h.shrinker_exposed,
                "cores": h.cores,
                "memory_bytes": h.memory_bytes,
                "simulated": h.simulated,
                "samples": [
                    [
                        s.at,
                        s.headroom_bytes,
                        s.pgscan_kswapd,
                        s.allocstall,
                        s.starting,
                        s.starts_total,
                    ]
                    for s in h.samples
                ],
            }
            for h in histories
        ],
    }
    return json.dumps(body, separators=(",", ":"))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def decode_timeline(text: str) -> tuple[NodeHistory, ...]:
    """Parse a timeline; raise :class:`TimelineError` on anything odd."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise TimelineError(f"timeline is not JSON: {exc}") from exc
    if not isinstance(body, Mapping) or body.get("v") != TIMELINE_VERSION:
        raise TimelineError(f"timeline must be a version-{TIMELINE_VERSION} JSON object")
    out: list[NodeHistory] = []
    try:
        for n in body["nodes"]:
            samples = tuple(
                Sample(
                    at=float(row[0]),
                    headroom_bytes=_opt_float(row[1]),
                    pgscan_kswapd=float(row[2] or 0.0),
                    allocstall=float(row[3] or 0.0),
                    starting=_opt_float(row[4]) if len(row) > 4 else None,
                    starts_total=_opt_float(row[5]) if len(row) > 5 else None,
                )
                for row in n["samples"]
            )
            out.append(
                NodeHistory(
                    node=str(n["node"]),
                    samples=tuple(sorted(samples, key=lambda s: s.at)),
                    kernel_release=str(n.get("kernel_release") or ""),
                    shrinker_exposed=n.get("shrinker_exposed"),
                    cores=_opt_float(n.get("cores")),
                    memory_bytes=None if n.get("memory_bytes") is None else int(n["memory_bytes"]),
                    simulated=bool(n.get("simulated", False)),
                )
            )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise TimelineError(f"timeline node entry malformed: {exc}") from exc
    return tuple(out)
