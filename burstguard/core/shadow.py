"""Shadow (DryRun) mode: the same pacing decisions, recorded as "would have" instead of applied.

A DryRun policy gates nothing, so its pods start at once. The shadow keeps a virtual queue of
the pods it *would* have gated (entered at creation) and runs :func:`pacing.plan` on it
against the real node stream each tick; a pod leaves the virtual queue when the plan would
have released it, and the wait it would have had is recorded. Node closures come from the
same intake steering as in Enforce mode and are recorded with their time and reasons.
Nothing here touches the cluster; the summary goes to the policy's status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from burstguard.api import policy as policy_api
from burstguard.api import times
from burstguard.core import pacing

RECENT: int = 20
"""How many recent pod delays and node closures the summary keeps."""


@dataclass(frozen=True)
class Delay:
    """A pod the policy would have held."""

    pod: str
    """``namespace/name``."""
    seconds: float
    """How long it would have stayed gated, seconds."""


@dataclass(frozen=True)
class Closure:
    """A node the policy would have closed."""

    node: str
    """Node name."""
    at: float
    """When, Unix seconds."""
    reasons: tuple[str, ...]
    """Why (machine reasons)."""


@dataclass(frozen=True)
class WouldHave:
    """Running summary of shadow decisions."""

    gated_pods: int = 0
    """Pods the policy would have gated."""
    delayed_pods: int = 0
    """Of those, pods that would have waited at least one tick."""
    total_delay_s: float = 0.0
    """Sum of would-have waits, seconds."""
    max_delay_s: float = 0.0
    """Longest would-have wait, seconds."""
    closed_nodes: int = 0
    """Node closures it would have made."""
    recent_delays: tuple[Delay, ...] = ()
    """Latest delayed pods (at most ``RECENT``)."""
    recent_closures: tuple[Closure, ...] = ()
    """Latest closures (at most ``RECENT``)."""

    def as_status(self) -> dict[str, Any]:
        """The ``status.wouldHave`` object."""
        mean = self.total_delay_s / self.delayed_pods if self.delayed_pods else 0.0
        return {
            "gatedPods": self.gated_pods,
            "delayedPods": self.delayed_pods,
            "meanDelaySeconds": round(mean, 3),
            "maxDelaySeconds": round(self.max_delay_s, 3),
            "closedNodes": self.closed_nodes,
            "recentDelays": [
                {"pod": d.pod, "seconds": round(d.seconds, 3)} for d in self.recent_delays
            ],
            "recentClosures": [
                {"node": c.node, "at": times.rfc3339(c.at), "reasons": list(c.reasons)}
                for c in self.recent_closures
            ],
        }


@dataclass(frozen=True)
class Step:
    """One shadow tick."""

    plan: pacing.Plan
    """The plan the pacer would have applied."""
    delays: tuple[Delay, ...]
    """Pods released from the virtual queue this tick and their would-have waits."""


def step(
    queue: Iterable[pacing.QueuedPod],
    nodes: Sequence[pacing.NodeView],
    rules: policy_api.Pacing,
    *,
    bucket: pacing.TokenBucket,
    now: float,
) -> Step:
    """Run the live pacing decision on the virtual queue (overdue pods leave it too)."""
    queue = list(queue)
    late = pacing.overdue(queue, rules.max_gate_seconds, now)
    late_keys = {p.key for p in late}
    decided = pacing.plan(
        [p for p in queue if p.key not in late_keys], nodes, rules, bucket=bucket, now=now
    )
    delays = tuple(Delay(p.key, max(0.0, now - p.created_at)) for p in (*late, *decided.release))
    return Step(plan=decided, delays=delays)


def record(
    summary: WouldHave,
    *,
    entered: int = 0,
    delays: Sequence[Delay] = (),
    closures: Sequence[Closure] = (),
    tick_s: float = 0.0,
) -> WouldHave:
    """Fold one tick's shadow decisions into the summary (a wait under one tick is no delay)."""
    held = [d for d in delays if d.seconds > tick_s]
    return replace(
        summary,
        gated_pods=summary.gated_pods + entered,
        delayed_pods=summary.delayed_pods + len(held),
        total_delay_s=summary.total_delay_s + sum(d.seconds for d in held),
        max_delay_s=max([summary.max_delay_s, *(d.seconds for d in held)]),
        closed_nodes=summary.closed_nodes + len(closures),
        recent_delays=(*summary.recent_delays, *held)[-RECENT:],
        recent_closures=(*summary.recent_closures, *closures)[-RECENT:],
    )
