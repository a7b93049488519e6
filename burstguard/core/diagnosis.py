"""``doctor``'s verdict on one node: findings with a severity, decided from measured values.

Pure: it takes what the CLI measured (headroom, rates, exposure, PSI, sysctls, tracing
support) and returns findings; the CLI prints them and maps the worst severity to an exit
code. Thresholds follow DESIGN §2.2: reclaim *activity* (kswapd scanning) is the signal that
matters, not how much memory is "used".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from burstguard.api import nodesummary
from burstguard.core import headroom, kernel

DEFAULT_BURST_BYTES = 2 * 1024**3
"""Headroom a node should have for one burst when nothing else is known: 8 starts × 256 MiB."""

FRAGMENTED_BELOW = 0.2
"""High-order free share under which the node is called fragmented (compaction helps)."""

PSI_SOME_WARN = 10.0
"""Memory PSI some avg10 (percent) worth a note; informational, it does not predict trouble."""


class Severity(enum.IntEnum):
    """Ordered so that the worst finding is the maximum."""

    OK = 0
    INFO = 1
    WARNING = 2


@dataclass(frozen=True)
class Finding:
    """One line of the verdict."""

    severity: Severity
    """How much it matters."""
    code: str
    """Stable identifier (for scripts and docs)."""
    message: str
    """What was seen and what to do, in words."""


@dataclass(frozen=True)
class Inputs:
    """What doctor measured."""

    headroom: headroom.Headroom
    """Headroom from the last sample."""
    rates: nodesummary.ReclaimRates
    """Reclaim rates over the sampling window."""
    exposure: kernel.Exposure
    """shrinker_rwsem verdict."""
    psi_some_avg10: float | None
    """Memory PSI some avg10, percent (None without PSI)."""
    missing_counters: tuple[str, ...] = ()
    """Reclaim counters this kernel does not expose."""
    bpf_unusable_reason: str = ""
    """Why BPF signals are unavailable (empty when usable)."""
    burst_bytes: int = DEFAULT_BURST_BYTES
    """Headroom wanted for one burst, bytes."""


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def diagnose(inp: Inputs) -> tuple[Finding, ...]:
    """Every finding, worst first; an empty tuple never happens (OK is a finding too)."""
    out: list[Finding] = []
    h, r = inp.headroom, inp.rates
    if r.pgscan_kswapd > 0 or r.pgscan_direct > 0:
        out.append(
            Finding(
                Severity.WARNING,
                "reclaim-active",
                f"reclaim is running: kswapd scans {r.pgscan_kswapd:,.0f} pages/s, direct reclaim "
                f"{r.pgscan_direct:,.0f} pages/s; a container burst now would start into reclaim",
            )
        )
    if r.allocstall > 0:
        out.append(
            Finding(
                Severity.WARNING,
                "allocation-stalls",
                f"{r.allocstall:,.1f} allocation stalls/s: tasks are reclaiming memory themselves",
            )
        )
    if h.below_low_zones:
        out.append(
            Finding(
                Severity.WARNING,
                "below-low-watermark",
                f"zones under the low watermark: {', '.join(h.below_low_zones)} (kswapd is awake)",
            )
        )
    if h.headroom_bytes < inp.burst_bytes:
        out.append(
            Finding(
                Severity.WARNING,
                "headroom-short",
                f"headroom {_mib(h.headroom_bytes)} is under one burst ({_mib(inp.burst_bytes)}); "
                f"{_mib(h.reclaimable_bytes)} of page cache could be reclaimed ahead of it",
            )
        )
    elif h.cache_credit_bytes > 0 and h.watermark_headroom_bytes < inp.burst_bytes:
        out.append(
            Finding(
                Severity.INFO,
                "headroom-from-cache",
                f"free memory above the watermarks is {_mib(h.watermark_headroom_bytes)}, under "
                f"one burst; {_mib(h.cache_credit_bytes)} of clean inactive cache counts as "
                "headroom on this kernel, so starts will wake kswapd to drop it: allow "
                "preparation (dropPageCache) to free it before a burst",
            )
        )
    if inp.exposure.exposed:
        out.append(
            Finding(
                Severity.WARNING,
                "shrinker-rwsem-exposed",
                f"{inp.exposure.reason}: overlayfs mounts can stall behind kswapd; keep kswapd "
                "asleep during bursts (pace starts, prepare nodes) or upgrade to 6.7+",
            )
        )
    elif inp.exposure.exposed is None:
        out.append(Finding(Severity.INFO, "exposure-unknown", inp.exposure.reason))
    if h.high_order_free_ratio is not None and h.high_order_free_ratio < FRAGMENTED_BELOW:
        out.append(
            Finding(
                Severity.INFO,
                "fragmented",
                f"only {h.high_order_free_ratio:.0%} of free memory is in order>=4 blocks; "
                "compaction before a burst avoids compaction stalls",
            )
        )
    if inp.psi_some_avg10 is not None and inp.psi_some_avg10 >= PSI_SOME_WARN:
        out.append(
            Finding(
                Severity.INFO,
                "memory-pressure",
                f"memory PSI some avg10 = {inp.psi_some_avg10:.1f} %",
            )
        )
    if inp.missing_counters:
        out.append(
            Finding(
                Severity.INFO,
                "counters-missing",
                f"this kernel has no {', '.join(inp.missing_counters)} in /proc/vmstat (read as 0)",
            )
        )
    if inp.bpf_unusable_reason:
        out.append(
            Finding(
                Severity.INFO,
                "bpf-unavailable",
                f"BPF signals unavailable ({inp.bpf_unusable_reason}): "
                "the agent will run on procfs signals only",
            )
        )
    if not any(f.severity is Severity.WARNING for f in out):
        out.append(
            Finding(
                Severity.OK,
                "healthy",
                f"headroom {_mib(h.headroom_bytes)}, no reclaim activity during the sample",
            )
        )
    return tuple(sorted(out, key=lambda f: -f.severity))


def worst(findings: tuple[Finding, ...]) -> Severity:
    """The worst severity (OK when there are no findings)."""
    return max((f.severity for f in findings), default=Severity.OK)
