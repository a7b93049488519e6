"""Intake steering: from a node's published summary to its ``burstguard.io/intake`` label.

The agent's summary (api.nodesummary) is turned into an observation for the node state
machine (core.nodestate, which owns the hysteresis), using the policy's thresholds: reclaim
is "active" when kswapd + direct scanning exceeds ``reclaimScanRate`` pages/s or any
allocation stall happened (the kswapd scan rate rose 0.8-2.8 s before the first stall in
reference/host-6.18-bursts.md, so it is the leading signal). Except where that scanning is
budgeted: on a kernel not exposed to the shrinker_rwsem stall whose headroom includes a cache
credit (core.headroom), the pacer admits starts into clean page cache on purpose, and kswapd
dropping it is the expected, cheap consequence. Closing on it there held a warm node closed
for most of a burst (measured on the 6.18 host, 30 pods x 192 MiB: no release for the first
13.7 s, then a 9 s gap, makespan 37.4 s against 10.4 s unguarded). Direct reclaim and
allocation stalls (the starting containers themselves waiting) still close every node, and
kswapd scanning still closes a node without credit. Lock-wait p99 counts only on
nodes exposed to the pre-6.7 ``shrinker_rwsem`` stall; mount p99 counts everywhere, over the
policy's ``mountLatencyThreshold`` (1 s by default, far above the host's 6.18 in-burst
preemption tail of ~16 ms). This is the one place a mount latency closes a node: the
agent publishes it and does not act on it.

The label is ``closed`` while the machine is Closed; otherwise ``open``. For a policy that
does not pin released pods to nodes it is also ``closed`` while the node already has
``maxStartingPerNode`` pods starting, so the scheduler places released pods on nodes that
can take them. A pinning policy picks the node itself, and flipping the label at every wave
of starts cost about one label write per pod (measured: 2.0 operator writes per pod in the
1000-node scale benchmark). A Stale node is labelled ``open``: with no fresh summary
burstguard knows nothing against it, and the pacer still holds it to the in-flight limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from burstguard.api import names, nodesummary
from burstguard.api import policy as policy_api
from burstguard.core import nodestate, pacing


def params(spec: policy_api.PolicySpec) -> nodestate.Params:
    """Machine thresholds from a policy."""
    h = spec.headroom
    return nodestate.Params(
        close_below_bytes=spec.close_below_bytes,
        reopen_margin=h.reopen_margin,
        reopen_hold_s=h.reopen_hold_s,
        stale_after_s=h.stale_after_s,
        close_on_reclaim=h.close_on_reclaim,
    )


def observation(
    summary: nodesummary.NodeSummary | None, rules: policy_api.HeadroomRules
) -> nodestate.Observation | None:
    """The machine's view of one summary (None when the node has none)."""
    if summary is None:
        return None
    r = summary.rates
    budgeted = not summary.shrinker_exposed and summary.cache_credit_bytes > 0
    scanned = (0.0 if budgeted else r.pgscan_kswapd) + r.pgscan_direct
    reclaim_active = scanned > rules.reclaim_scan_rate or r.allocstall > 0
    lock_over = (
        summary.shrinker_exposed
        and summary.lock_wait_p99_s is not None
        and summary.lock_wait_p99_s > rules.lock_wait_threshold_s
    )
    mount_over = (
        summary.mount_p99_s is not None and summary.mount_p99_s > rules.mount_latency_threshold_s
    )
    return nodestate.Observation(
        sampled_at=summary.sampled_at,
        headroom_bytes=summary.headroom_bytes,
        reclaim_active=reclaim_active,
        latency_over=lock_over or mount_over,
    )


@dataclass(frozen=True)
class Verdict:
    """What steering decided for one node this tick."""

    machine: nodestate.Machine
    """The node's machine after this step."""
    label: str
    """Desired intake label value (``open``/``closed``)."""
    pacing_state: str
    """State handed to the pacer (``open``/``closed``/``stale``)."""
    reasons: tuple[str, ...]
    """Why (machine reasons plus ``start-limit``)."""


def steer(
    machine: nodestate.Machine,
    summary: nodesummary.NodeSummary | None,
    spec: policy_api.PolicySpec,
    *,
    starting: int,
    now: float,
) -> Verdict:
    """One step for one node: advance the machine, derive the label and the pacer's state."""
    nxt = nodestate.step(machine, observation(summary, spec.headroom), params(spec), now)
    reasons = nxt.reasons
    if nxt.state is nodestate.State.CLOSED:
        return Verdict(nxt, names.INTAKE_CLOSED, pacing.NODE_CLOSED, reasons)
    at_limit = starting >= spec.pacing.max_starting_per_node
    steer_scheduler = at_limit and not spec.pacing.pin_to_node
    label = names.INTAKE_CLOSED if steer_scheduler else names.INTAKE_OPEN
    if at_limit:
        reasons = (*reasons, "start-limit")
    state = pacing.NODE_STALE if nxt.state is nodestate.State.STALE else pacing.NODE_OPEN
    return Verdict(nxt, label, state, reasons)
