"""Node-side preparation planning: which actions free memory before a burst, in which order.

The operator asks a node for bytes (``api.preparation.PrepareRequest``), or the agent asks
itself when its headroom falls under its own threshold and the operator has been silent
(DESIGN §2.4: "the agent also acts on its own thresholds when the operator is unreachable").
This module turns that want into an ordered plan, cheapest action first:

1. **compaction** (``/proc/sys/vm/compact_memory``) when high-order free blocks are scarce:
   it frees nothing, but saves the burst's high-order allocations (ext4 page-cache folios,
   THP) from direct compaction stalls (reference/host-6.18: page-cache fill alone caused
   99 compact_stalls);
2. **cgroup v2 ``memory.reclaim``** on configured cgroups (e.g. finished batch pods' slices),
   each up to ``cgroup_max_bytes``: targeted, leaves other workloads' cache alone;
3. **``drop_caches=1``** (clean page cache) only as a last resort: it freed ~15 GB in 0.1 s
   in the host measurements but discards every workload's cache.

Slab is never dropped on a kernel exposed to the ``shrinker_rwsem`` stall (``drop_caches``
2 or 3): in the lab that caused an 18.8 s stall by itself (reference/lab-qemu-6.1). It is
only possible with ``drop_slab`` set *and* a kernel known not to be exposed.

Guardrails per action kind: a cooldown, an hourly budget, and a skip while the kernel is
already doing the work (kcompactd/compaction stalls for compaction, kswapd scanning for
reclaim: a second reclaimer competes for the same pages and CPU on a busy node). The
executor (``agent.preparing``) runs the actions in order and stops once the shortfall is
covered; DryRun plans identically and executes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

COMPACT: Final = "compact"
CGROUP_RECLAIM: Final = "cgroup_reclaim"
DROP_CACHES: Final = "drop_caches"
KINDS: Final = (COMPACT, CGROUP_RECLAIM, DROP_CACHES)
"""Action kinds, cheapest first."""

HOUR_S: Final = 3600.0


@dataclass(frozen=True)
class Params:
    """Guardrails and switches (agent flags / policy ``preparation`` section)."""

    compaction: bool = True
    """Allow compaction; default on."""
    compaction_below_ratio: float = 0.25
    """Compact when the share of free pages in order >= 4 blocks is under this; default 0.25."""
    compaction_cooldown_s: float = 60.0
    """Least time between two compactions, seconds; default 60."""
    cgroup_reclaim: bool = False
    """Allow memory.reclaim on ``cgroups``; default off."""
    cgroups: tuple[str, ...] = ()
    """cgroup v2 directories (absolute paths) to reclaim from, in order; default none."""
    cgroup_max_bytes: int = 2 * 1024**3
    """Most bytes asked of one cgroup per action; default 2 GiB."""
    cgroup_cooldown_s: float = 30.0
    """Least time between two reclaims of the same cgroup, seconds; default 30."""
    drop_page_cache: bool = False
    """Allow ``drop_caches=1``; default off (it causes jitter for every workload)."""
    drop_cache_cooldown_s: float = 300.0
    """Least time between two cache drops, seconds; default 300."""
    drop_slab: bool = False
    """Use ``drop_caches=3`` (page cache + slab) instead of 1; honoured only on kernels known
    not to be exposed to the shrinker_rwsem stall; default off."""
    per_hour: int = 6
    """Most actions of one kind per rolling hour; default 6."""
    skip_when_busy: bool = True
    """Skip compaction while kcompactd works and reclaim while kswapd scans; default on."""


@dataclass(frozen=True)
class NodeView:
    """What the planner needs to know about the node now."""

    headroom_bytes: int
    """Headroom (core.headroom), bytes."""
    reclaimable_bytes: int
    """Page cache that could be dropped (Inactive(file) + Active(file)), bytes."""
    high_order_free_ratio: float | None
    """Share of free pages in order >= 4 blocks; None when unknown."""
    kswapd_busy: bool
    """kswapd scanned pages during the last sampling interval."""
    kcompactd_busy: bool
    """kcompactd or direct compaction ran during the last sampling interval."""
    shrinker_exposed: bool | None
    """Kernel exposed to the shrinker_rwsem stall; None when unknown (treated as exposed)."""


@dataclass(frozen=True)
class Record:
    """One past action (executed or dry-run), for cooldowns and budgets."""

    kind: str
    """Action kind."""
    at: float
    """When, seconds (same clock as ``now``)."""
    target: str = ""
    """cgroup path for cgroup reclaim, empty otherwise."""


@dataclass(frozen=True)
class Action:
    """One step of a plan."""

    kind: str
    """``compact``, ``cgroup_reclaim`` or ``drop_caches``."""
    target: str = ""
    """cgroup path (cgroup reclaim) or the drop_caches value ``1``/``3``."""
    bytes: int = 0
    """Bytes asked (cgroup reclaim); 0 for the others."""
    reason: str = ""
    """Why this step."""


@dataclass(frozen=True)
class Skip:
    """An action the plan left out, and why."""

    kind: str
    """Action kind."""
    target: str
    """cgroup path, or empty."""
    reason: str
    """Why it was left out (stable, short)."""


@dataclass(frozen=True)
class Plan:
    """Ordered actions for one want."""

    want_bytes: int
    """Bytes the node should free beyond its current headroom."""
    source: str
    """``request:<id>`` or ``threshold``."""
    actions: tuple[Action, ...] = ()
    """Steps, cheapest first."""
    skipped: tuple[Skip, ...] = field(default_factory=tuple)
    """Steps left out, with reasons."""


def _cooling(
    history: Sequence[Record], kind: str, target: str, cooldown_s: float, now: float
) -> bool:
    return any(r.kind == kind and r.target == target and now - r.at < cooldown_s for r in history)


def _spent(history: Sequence[Record], kind: str, now: float) -> int:
    return sum(1 for r in history if r.kind == kind and now - r.at < HOUR_S)


def own_want(
    headroom_bytes: int,
    threshold_bytes: int,
    last_request_at: float | None,
    operator_silent_s: float,
    now: float,
) -> int:
    """Bytes the agent asks of itself: the shortfall under its threshold, once the operator
    has written no request for ``operator_silent_s``; 0 otherwise or with threshold 0."""
    if threshold_bytes <= 0 or headroom_bytes >= threshold_bytes:
        return 0
    if last_request_at is not None and now - last_request_at < operator_silent_s:
        return 0
    return threshold_bytes - headroom_bytes


def plan(
    want_bytes: int,
    source: str,
    node: NodeView,
    *,
    history: Sequence[Record],
    params: Params,
    now: float,
) -> Plan:
    """The ordered actions for ``want_bytes`` (see the module docstring for the rules)."""
    actions: list[Action] = []
    skipped: list[Skip] = []

    def guard(kind: str, target: str, cooldown_s: float, busy: str | None) -> bool:
        if _cooling(history, kind, target, cooldown_s, now):
            skipped.append(Skip(kind, target, "cooldown"))
            return False
        if _spent(history, kind, now) >= params.per_hour:
            skipped.append(Skip(kind, target, "hourly-budget-spent"))
            return False
        if busy is not None and params.skip_when_busy:
            skipped.append(Skip(kind, target, busy))
            return False
        return True

    if params.compaction:
        ratio = node.high_order_free_ratio
        if ratio is None or ratio >= params.compaction_below_ratio:
            skipped.append(Skip(COMPACT, "", "high-order-blocks-plentiful"))
        elif guard(
            COMPACT,
            "",
            params.compaction_cooldown_s,
            "kcompactd-busy" if node.kcompactd_busy else None,
        ):
            actions.append(
                Action(
                    COMPACT,
                    reason=f"high-order free share {ratio:.2f}"
                    f" < {params.compaction_below_ratio:.2f}",
                )
            )

    if want_bytes <= 0:
        return Plan(want_bytes, source, tuple(actions), tuple(skipped))

    reclaim_busy = "kswapd-busy" if node.kswapd_busy else None
    remaining = want_bytes
    if params.cgroup_reclaim:
        for cg in params.cgroups:
            if remaining <= 0:
                break
            if guard(CGROUP_RECLAIM, cg, params.cgroup_cooldown_s, reclaim_busy):
                amount = min(remaining, params.cgroup_max_bytes)
                actions.append(Action(CGROUP_RECLAIM, cg, amount, "targeted reclaim"))
                remaining -= amount

    if params.drop_page_cache:
        if node.reclaimable_bytes <= 0:
            skipped.append(Skip(DROP_CACHES, "", "no-page-cache"))
        elif guard(DROP_CACHES, "", params.drop_cache_cooldown_s, reclaim_busy):
            value = "3" if params.drop_slab and node.shrinker_exposed is False else "1"
            actions.append(Action(DROP_CACHES, value, 0, "last resort: clean page cache"))
    return Plan(want_bytes, source, tuple(actions), tuple(skipped))


def drop_caches_value_allowed(value: str, shrinker_exposed: bool | None) -> bool:
    """The executor's last check: slab (2, 3) only on kernels known not to be exposed."""
    if value == "1":
        return True
    return value in ("2", "3") and shrinker_exposed is False
