"""The Node summary: what the agent publishes about its node and the operator reads.

This is the contract between the node agent (writer) and the operator's pacer and intake
steering (readers). It travels as JSON in the Node annotation ``burstguard.io/summary``, next
to a Node condition ``BurstguardHeadroom`` (True = the node can take more starts), because
annotations and conditions need no extra CRD, survive agent restarts, and are visible with
``kubectl describe node``. The simulated fleet of ``burstguard demo`` writes the same object.

Encoding is pure and versioned (``v``); a reader rejects what it cannot trust (missing fields,
wrong types, unknown version) with a :class:`SummaryError` instead of guessing, and the
operator then treats the node as Stale.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

SUMMARY_VERSION: Final = 1


class SummaryError(ValueError):
    """A summary annotation that cannot be decoded or fails validation."""


@dataclass(frozen=True)
class ReclaimRates:
    """Reclaim activity as per-second rates over the last sampling interval."""

    pgscan_kswapd: float = 0.0
    """Pages scanned by kswapd per second (the best leading signal, reference/host-6.18)."""
    pgscan_direct: float = 0.0
    """Pages scanned in direct reclaim per second."""
    allocstall: float = 0.0
    """Allocation stalls (sum of allocstall_*) per second."""
    compact_stall: float = 0.0
    """Direct compaction stalls per second."""
    kswapd_low_wmark_hit_quickly: float = 0.0
    """kswapd wakeups that hit the low watermark quickly, per second."""


@dataclass(frozen=True)
class NodeSummary:
    """One node's memory state as seen by its agent."""

    sampled_at: float
    """Unix time of the sample, seconds."""
    state: str
    """Agent's own verdict: ``Open`` or ``Closed``."""
    headroom_bytes: int
    """Σ over zones (free − high) − reserve, bytes; negative when below the high watermark."""
    reclaimable_bytes: int
    """Page cache that could be freed proactively (Inactive(file) + Active(file)), bytes."""
    cache_credit_bytes: int = 0
    """The part of ``headroom_bytes`` that is clean page cache counted as room (core.headroom),
    bytes: taking it makes kswapd scan. Absent in older summaries (0)."""
    rates: ReclaimRates = field(default_factory=ReclaimRates)
    """Reclaim activity."""
    reasons: tuple[str, ...] = ()
    """Why the state is what it is (e.g. ``kswapd-scanning``), empty when Open and quiet."""
    kernel_release: str = ""
    """``uname -r`` of the node."""
    shrinker_exposed: bool = False
    """True when the kernel still has the global ``shrinker_rwsem`` (< 6.7)."""
    lock_wait_p99_s: float | None = None
    """p99 of shrinker lock hold/wait over the last window, seconds; None without BPF."""
    mount_p99_s: float | None = None
    """p99 of mount(2) latency over the last window, seconds; None without BPF."""
    signal_source: str = "procfs"
    """``procfs`` or ``procfs+bpf``."""
    degraded_reason: str = ""
    """Why a signal source is missing (e.g. ``bpftrace not found``), empty when complete."""
    simulated: bool = False
    """True when written by the demo's simulated fleet rather than a real agent."""


def encode(summary: NodeSummary) -> str:
    """Serialize to the compact JSON stored in the annotation."""
    body: dict[str, Any] = {"v": SUMMARY_VERSION, **asdict(summary)}
    body["reasons"] = list(summary.reasons)
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _num(body: dict[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SummaryError(f"summary field {key!r} must be a finite number, got {value!r}")
    return float(value)


def decode(text: str) -> NodeSummary:
    """Parse and validate an annotation value; raise :class:`SummaryError` on anything odd."""
    try:
        body = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise SummaryError(f"summary is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SummaryError("summary must be a JSON object")
    if body.get("v") != SUMMARY_VERSION:
        raise SummaryError(f"unsupported summary version {body.get('v')!r}")
    state = body.get("state")
    if state not in ("Open", "Closed"):
        raise SummaryError(f"summary state must be Open or Closed, got {state!r}")
    rates_raw = body.get("rates") or {}
    if not isinstance(rates_raw, dict):
        raise SummaryError("summary field 'rates' must be an object")
    rates = ReclaimRates(
        **{
            k: float(_num(rates_raw, k) or 0.0)
            for k in ReclaimRates.__dataclass_fields__
            if k in rates_raw
        }
    )
    reasons = body.get("reasons") or []
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise SummaryError("summary field 'reasons' must be a list of strings")
    return NodeSummary(
        sampled_at=float(_num(body, "sampled_at") or 0.0),
        state=state,
        headroom_bytes=int(_num(body, "headroom_bytes") or 0),
        reclaimable_bytes=int(_num(body, "reclaimable_bytes") or 0),
        cache_credit_bytes=max(0, int(_num(body, "cache_credit_bytes", optional=True) or 0)),
        rates=rates,
        reasons=tuple(reasons),
        kernel_release=str(body.get("kernel_release", "")),
        shrinker_exposed=bool(body.get("shrinker_exposed", False)),
        lock_wait_p99_s=_num(body, "lock_wait_p99_s", optional=True),
        mount_p99_s=_num(body, "mount_p99_s", optional=True),
        signal_source=str(body.get("signal_source", "procfs")),
        degraded_reason=str(body.get("degraded_reason", "")),
        simulated=bool(body.get("simulated", False)),
    )
