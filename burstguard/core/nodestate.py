"""The node state machine: Open, Closed or Stale, with hysteresis.

A node closes as soon as it is in trouble (headroom under the threshold, reclaim running,
or lock/mount latency over its threshold) and reopens only after it has looked healthy
with a margin (``headroom ≥ threshold × reopen_margin``) for ``reopen_hold_s`` without a
break. Closing fast and reopening slowly keeps the intake label from flapping while kswapd
runs in bursts (DESIGN §2.1); the property tests check that a reopen never comes sooner
than the hold time and that more headroom never makes a node "more closed".

Stale means "no fresh observation": callers (the pacer) then fall back to the in-flight
limit alone. A node that was Closed and went Stale comes back Closed, so staleness cannot
be used to skip the hold.

``step`` is pure: it takes the previous machine, the newest observation (or None) and the
time, and returns the next machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class State(enum.Enum):
    """Node intake state."""

    OPEN = "Open"
    CLOSED = "Closed"
    STALE = "Stale"
    UNMANAGED = "Unmanaged"


@dataclass(frozen=True)
class Params:
    """Thresholds of the machine (from the BurstPolicy ``headroom`` section)."""

    close_below_bytes: int
    """Close when headroom is under this many bytes."""
    reopen_margin: float = 1.2
    """Reopen only when headroom ≥ close_below_bytes × this factor (≥ 1)."""
    reopen_hold_s: float = 5.0
    """Healthy that long without a break before reopening, seconds."""
    stale_after_s: float = 15.0
    """An observation older than this is no observation, seconds."""
    close_on_reclaim: bool = True
    """Close while kswapd or direct reclaim is scanning."""


@dataclass(frozen=True)
class Observation:
    """What the machine needs from one sample of a node."""

    sampled_at: float
    """When the sample was taken, seconds (same clock as ``now``)."""
    headroom_bytes: int
    """Headroom (core.headroom), bytes."""
    reclaim_active: bool = False
    """kswapd or direct reclaim scanned pages since the last sample."""
    latency_over: bool = False
    """Shrinker lock wait or mount p99 over the policy threshold (exposed kernels only)."""


@dataclass(frozen=True)
class Machine:
    """The machine's memory between steps."""

    state: State = State.STALE
    """Current state; a new machine is Stale until it sees a sample."""
    since: float | None = None
    """When the current state was entered, seconds."""
    healthy_since: float | None = None
    """Start of the current unbroken healthy streak, seconds; None when not healthy."""
    last_verdict: State = State.OPEN
    """Last non-stale state; a Stale node resumes from it."""
    reasons: tuple[str, ...] = ()
    """Why the node is in its state (stable identifiers, e.g. ``headroom-low``)."""


def trouble_reasons(obs: Observation, params: Params) -> tuple[str, ...]:
    """Reasons to close now (empty when none)."""
    reasons: list[str] = []
    if obs.headroom_bytes < params.close_below_bytes:
        reasons.append("headroom-low")
    if params.close_on_reclaim and obs.reclaim_active:
        reasons.append("reclaim-active")
    if obs.latency_over:
        reasons.append("latency-high")
    return tuple(reasons)


def healthy_with_margin(obs: Observation, params: Params) -> bool:
    """The reopen condition: no trouble and headroom above the threshold times the margin."""
    return (
        not trouble_reasons(obs, params)
        and obs.headroom_bytes >= params.close_below_bytes * params.reopen_margin
    )


def step(machine: Machine, obs: Observation | None, params: Params, now: float) -> Machine:
    """Advance the machine to ``now`` with the newest observation (None: nothing new)."""
    if obs is None or now - obs.sampled_at > params.stale_after_s:
        if machine.state is State.STALE:
            return machine
        return replace(
            machine,
            state=State.STALE,
            since=now,
            healthy_since=None,
            last_verdict=machine.state,
            reasons=("no-fresh-summary",),
        )

    reasons = trouble_reasons(obs, params)
    healthy = healthy_with_margin(obs, params)
    # The streak starts when the healthy sample was taken, not when it was read: an observer
    # that reads published summaries (the operator) would otherwise add the publish delay to
    # every hold. Clamped to ``now`` (a clock ahead of ours) and to the closing time (a sample
    # older than the closure), so the hold is never shortened.
    start = min(now, obs.sampled_at)
    if machine.state is State.CLOSED and machine.since is not None:
        start = max(start, machine.since)
    healthy_since = (machine.healthy_since or start) if healthy else None
    current = machine.last_verdict if machine.state is State.STALE else machine.state

    if current is State.OPEN:
        if reasons:
            return Machine(State.CLOSED, now, None, State.CLOSED, reasons)
        state_since = machine.since if machine.state is State.OPEN else now
        return Machine(State.OPEN, state_since, healthy_since, State.OPEN, ())

    # Closed (possibly resuming from Stale): reopen only after an unbroken healthy hold.
    if healthy_since is not None and now - healthy_since >= params.reopen_hold_s:
        return Machine(State.OPEN, now, healthy_since, State.OPEN, ())
    state_since = machine.since if machine.state is State.CLOSED else now
    waiting = reasons or ("reopen-hold",)
    return Machine(State.CLOSED, state_since, healthy_since, State.CLOSED, waiting)
