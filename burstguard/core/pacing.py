"""Pacing: which gated pods to release this tick, as a pure function of (queue, nodes, now).

Each tick releases at most ``min(cluster token bucket, Σ budget(node))`` pods, in strict
order: priority (high first), then creation time (old first), then namespace/name. The head of
the queue is never overtaken by a smaller pod behind it (no starvation of large pods; a pod
that fits nowhere waits until ``maxGateSeconds`` releases it anyway).

``budget(node) = min(maxStartingPerNode - starting, floor(headroom / podCost))``, optionally
also ``floor(maxStartingPerCore x cores) - starting`` because start concurrency costs CPU on
its own (reference: 2 concurrent starts on 2 cores cut start time 3-10x, 4 lost the benefit).
Headroom is the summary's figure minus ``committed_bytes``: the memory of starts the summary
cannot show yet (pods starting, released toward the node, or seen started after the summary
was sampled). Without it a node that finished a wave of starts looked as roomy as before the
wave until its next summary, and the pacer released into the same room again (measured in
the demo: every simulated node entered reclaim). A Stale node (no fresh summary) has no
headroom figure and falls back to the in-flight limit alone.

Capacity is taken greedily on the node with the most room. With ``pin`` (the default) each
released pod gets that node as its target, checked against the pod's own node constraints,
and the release patch pins it there. Without ``pin`` the scheduler chooses, and pods already
released but not yet bound (in flight) take capacity first, so a slow scheduler cannot make
the pacer release the same room twice.

:func:`budget` stands alone so other callers (the lab pacing container starts inside a VM)
can use the same per-node rule. Time is an argument everywhere; nothing here does I/O.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from burstguard.api import policy as policy_api
from burstguard.core import placement

NODE_OPEN: Final = "open"
NODE_CLOSED: Final = "closed"
NODE_STALE: Final = "stale"


@dataclass(frozen=True)
class TokenBucket:
    """Cluster-wide release allowance."""

    rate: float
    """Refill rate, pods per second."""
    capacity: float
    """Largest number of tokens held, pods."""
    tokens: float
    """Tokens now, pods."""
    updated_at: float
    """When ``tokens`` was last computed, Unix seconds."""


def full_bucket(rate: float, capacity: float, now: float) -> TokenBucket:
    """A bucket that starts full (a fresh pacer may release one burst at once)."""
    return TokenBucket(rate=rate, capacity=capacity, tokens=capacity, updated_at=now)


def refill(bucket: TokenBucket, now: float) -> TokenBucket:
    """Add ``rate x elapsed`` tokens up to the capacity; time never runs backwards here."""
    elapsed = max(0.0, now - bucket.updated_at)
    tokens = min(bucket.capacity, bucket.tokens + bucket.rate * elapsed)
    return replace(bucket, tokens=tokens, updated_at=max(now, bucket.updated_at))


def retune(bucket: TokenBucket, rate: float, capacity: float) -> TokenBucket:
    """Apply a changed policy rate/capacity without granting a fresh burst."""
    return replace(bucket, rate=rate, capacity=capacity, tokens=min(bucket.tokens, capacity))


def available(bucket: TokenBucket) -> int:
    """Whole tokens that may be spent now."""
    return max(0, math.floor(bucket.tokens + 1e-9))


def spend(bucket: TokenBucket, n: int) -> TokenBucket:
    """Take ``n`` tokens (never below zero)."""
    return replace(bucket, tokens=max(0.0, bucket.tokens - n))


def start_slots(
    *,
    max_starting_per_node: int,
    starting: int,
    max_starting_per_core: float = 0.0,
    cores: float | None = None,
) -> int:
    """How many more pods may start on a node by concurrency alone (the in-flight limit)."""
    slots = max_starting_per_node - starting
    if max_starting_per_core > 0 and cores:
        per_core_limit = max(1, math.floor(max_starting_per_core * cores + 1e-9))
        slots = min(slots, per_core_limit - starting)
    return max(0, slots)


def budget(
    *,
    max_starting_per_node: int,
    starting: int,
    headroom_bytes: int | None,
    pod_cost_bytes: int,
    max_starting_per_core: float = 0.0,
    cores: float | None = None,
) -> int:
    """Pods one node can take now: ``min(limit - starting, floor(headroom / podCost))``.

    ``headroom_bytes=None`` means no trustworthy summary: the in-flight limit alone applies.
    """
    slots = start_slots(
        max_starting_per_node=max_starting_per_node,
        starting=starting,
        max_starting_per_core=max_starting_per_core,
        cores=cores,
    )
    if headroom_bytes is None:
        return slots
    if pod_cost_bytes <= 0:
        raise ValueError("pod cost must be positive")
    return max(0, min(slots, headroom_bytes // pod_cost_bytes))


@dataclass(frozen=True)
class NodeView:
    """What the pacer knows about one guarded node."""

    name: str
    """Node name."""
    state: str = NODE_OPEN
    """``open``, ``closed`` or ``stale`` (intake state after hysteresis)."""
    starting: int = 0
    """Pods bound to the node whose containers have not all started."""
    headroom_bytes: int | None = None
    """Headroom from the node's summary, bytes; None when Stale."""
    committed_bytes: int = 0
    """Memory of starts the summary cannot show yet, bytes (subtracted from headroom)."""
    cache_credit_bytes: int = 0
    """The part of ``headroom_bytes`` that is clean page cache (core.headroom's cache credit):
    room the pacer may admit into, but taking it makes kswapd scan (core.requesting asks
    preparation to turn it into free memory first)."""
    cores: float | None = None
    """Allocatable CPU cores, for the per-core limit; None when unknown."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Node labels (for pinning feasibility)."""
    taints: tuple[placement.Taint, ...] = ()
    """Node taints (for pinning feasibility)."""


@dataclass(frozen=True)
class QueuedPod:
    """A gated pod waiting for release."""

    key: str
    """``namespace/name``."""
    created_at: float
    """Pod creation time, Unix seconds."""
    priority: int = 0
    """``spec.priority`` (higher first)."""
    cost_bytes: int | None = None
    """Memory request of the pod, bytes; None uses the policy's podStartupMemory."""
    constraints: placement.Constraints | None = None
    """The pod's own node constraints, for pinning; None when it may go anywhere."""


def order_key(pod: QueuedPod) -> tuple[int, float, str]:
    """Release order: priority desc, then creation time, then name."""
    return (-pod.priority, pod.created_at, pod.key)


def overdue(
    queue: Iterable[QueuedPod], max_gate_seconds: float, now: float
) -> tuple[QueuedPod, ...]:
    """Pods gated at least ``max_gate_seconds``: released regardless of budget (never strand)."""
    return tuple(
        sorted((p for p in queue if now - p.created_at >= max_gate_seconds), key=order_key)
    )


@dataclass(frozen=True)
class Plan:
    """What one tick decided."""

    release: tuple[QueuedPod, ...]
    """Pods to release now, in order."""
    bucket: TokenBucket
    """The bucket after spending the releases."""
    capacity: int
    """Σ budget(node) before this tick's releases, counted at the default pod cost."""
    placements: Mapping[str, int] = field(default_factory=dict)
    """Node name -> pods accounted to it this tick (the scheduler may place them elsewhere)."""
    limited_by: str = "queue"
    """Why not more were released: ``queue``, ``bucket`` or ``nodes``."""
    targets: Mapping[str, str | None] = field(default_factory=dict)
    """Pod key -> node it is pinned to (pinning on); None: fits no guarded node, left free."""


def cost_of(pod: QueuedPod, pacing: policy_api.Pacing) -> int:
    """Memory a pod's start costs, bytes."""
    return pod.cost_bytes if pod.cost_bytes else pacing.pod_startup_memory_bytes


def _room(node: NodeView, pacing: policy_api.Pacing) -> tuple[int, float]:
    slots = start_slots(
        max_starting_per_node=pacing.max_starting_per_node,
        starting=node.starting,
        max_starting_per_core=pacing.max_starting_per_core,
        cores=node.cores,
    )
    if node.state == NODE_CLOSED:
        return 0, 0.0
    if node.state == NODE_STALE or node.headroom_bytes is None:
        return slots, math.inf
    return slots, float(max(0, node.headroom_bytes - node.committed_bytes))


def plan(
    queue: Iterable[QueuedPod],
    nodes: Sequence[NodeView],
    pacing: policy_api.Pacing,
    *,
    bucket: TokenBucket,
    now: float,
    in_flight: Sequence[int] = (),
    pin: bool = False,
) -> Plan:
    """Decide this tick's releases (overdue pods are handled by :func:`overdue`, not here).

    ``in_flight`` lists the memory costs (bytes) of pods released but not yet bound and not
    pinned (pinned ones are counted in their node's ``starting``). With ``pin`` every release
    gets a target node that fits its constraints (``Plan.targets``).
    """
    bucket = refill(bucket, now)
    default_cost = pacing.pod_startup_memory_bytes
    capacity = sum(
        budget(
            max_starting_per_node=pacing.max_starting_per_node,
            starting=n.starting,
            headroom_bytes=None
            if n.state == NODE_STALE or n.headroom_bytes is None
            else (0 if n.state == NODE_CLOSED else n.headroom_bytes - n.committed_bytes),
            pod_cost_bytes=default_cost,
            max_starting_per_core=pacing.max_starting_per_core,
            cores=n.cores,
        )
        for n in nodes
    )
    # Max-heap of nodes by free bytes: (-bytes, name, slots).
    heap: list[tuple[float, str, int]] = []
    by_name = {n.name: n for n in nodes}
    for n in nodes:
        slots, room = _room(n, pacing)
        if slots > 0:
            heap.append((-room, n.name, slots))
    heapq.heapify(heap)
    placements: dict[str, int] = {}

    def place(cost: int, constraints: placement.Constraints | None = None) -> str | None:
        """Take room on the roomiest node that fits; None when none has room."""
        skipped: list[tuple[float, str, int]] = []
        found: tuple[float, str, int] | None = None
        while heap:
            entry = heapq.heappop(heap)
            if -entry[0] < cost:
                skipped.append(entry)
                break  # the roomiest remaining node is too small: so are all others
            node = by_name[entry[1]]
            if constraints is None or placement.feasible(
                constraints, node.name, node.labels, node.taints
            ):
                found = entry
                break
            skipped.append(entry)
        for entry in skipped:
            heapq.heappush(heap, entry)
        if found is None:
            return None
        neg_room, name, slots = found
        if slots > 1:
            heapq.heappush(heap, (neg_room + cost, name, slots - 1))
        return name

    for cost in in_flight:
        if place(cost or default_cost) is None:
            break
    tokens = available(bucket)
    head = heapq.nsmallest(tokens, queue, key=order_key) if tokens else []
    released: list[QueuedPod] = []
    targets: dict[str, str | None] = {}
    limited_by = "bucket"
    for pod in head:
        if (
            pin
            and pod.constraints is not None
            and not any(
                placement.feasible(pod.constraints, n.name, n.labels, n.taints) for n in nodes
            )
        ):
            released.append(pod)  # fits none of the guarded nodes: not ours to pace
            targets[pod.key] = None
            continue
        where = place(cost_of(pod, pacing), pod.constraints if pin else None)
        if where is None:
            limited_by = "nodes"
            break
        placements[where] = placements.get(where, 0) + 1
        released.append(pod)
        if pin:
            targets[pod.key] = where
    else:
        if len(head) < tokens:
            limited_by = "queue"
    return Plan(
        release=tuple(released),
        bucket=spend(bucket, len(released)),
        capacity=capacity,
        placements=placements,
        limited_by=limited_by,
        targets=targets,
    )
