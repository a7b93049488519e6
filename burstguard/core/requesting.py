"""Preparation requests (operator side): which nodes to ask to make room, and how much.

The queued demand (memory of every gated pod of a policy) is spread evenly over the nodes
that can take pods (open or stale); a node whose headroom is short of its share by at least
``minBytes`` is asked for the shortfall, at most once per ``cooldown`` unless the shortfall
has since grown to ``REASK_FACTOR`` times what the node was last asked for. A Job creates its
pods over seconds, so the first ask goes out while the queue is still filling and can be a
fraction of the need: in the demo, nodes asked for a few hundred MiB at the start sat closed
with a multi-GiB shortfall for the rest of the 10 s cooldown (about a quarter of the guarded
makespan). The agent applies its own per-action cooldowns to what it does about a request.
Stale nodes are skipped: without a summary the shortfall is unknown. Pure: the operator
writes the requests.

The shortfall is measured against *free* memory above the high watermark, without the cache
credit (``NodeView.cache_credit_bytes``). The pacer budgets with the credit, so a warm node
takes the burst at once; but every start that lands in credited page cache makes kswapd scan
(measured on the 6.18 host, 20 pods with the credit covering the whole queue: no request went
out and kswapd scanned 465k pages, about as much as unguarded). Dropping clean cache before
the burst was the one thing that removed that reclaim, so the node is asked for the demand
that free memory cannot cover, and the agent's guardrails (cooldown, hourly budget, busy
skip) decide whether it acts.

The loop is closed by the agent's acknowledgement (``api.preparationack``, DESIGN §7). Its
id says which request it answers; :func:`answer` turns it into ``pending`` (not answered
yet), ``served`` (freed at least what was asked), ``short`` (acted, freed less) or
``refused`` (nothing executed: every action skipped by a guardrail, failed, or DryRun).
A short or refused answer means the agent's own cooldowns and budgets hold it back, so the
node is not asked again within the cooldown, however much the queue grows: the re-ask would
only be refused too. Every answer also carries the headroom the agent measured after acting,
which is newer than a summary sampled before it: :func:`headroom_now` budgets the node on
that measurement, so a served request is not re-asked from a stale summary and a refused
or short one leaves the node budgeted on what it really has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from burstguard.api import policy as policy_api
from burstguard.api import preparationack
from burstguard.core import pacing

REASK_FACTOR: Final = 2.0
"""A node may be asked again within the cooldown once its shortfall is this many times what
it was last asked for."""


PENDING: Final = "pending"
SERVED: Final = "served"
SHORT: Final = "short"
REFUSED: Final = "refused"
ANSWER_STATES: Final = (PENDING, SERVED, SHORT, REFUSED)


@dataclass(frozen=True)
class Asked:
    """The last request written on one node."""

    id: str
    """Request id (``api.preparation.PrepareRequest.id``)."""
    at: float
    """When it was written, Unix seconds."""
    bytes_wanted: int
    """Shortfall asked for, bytes."""


@dataclass(frozen=True)
class Answer:
    """What became of the last request to one node."""

    state: str
    """``pending``, ``served``, ``short`` or ``refused``."""
    freed_bytes: int = 0
    """Headroom the agent gained (measured), bytes; 0 while pending."""
    headroom_after_bytes: int | None = None
    """Headroom the agent measured after acting, bytes; None while pending."""
    done_at: float | None = None
    """When the agent finished, Unix seconds; None while pending."""
    reasons: tuple[str, ...] = ()
    """Why it fell short: ``<kind>:<skip reason or failure>`` per action not done."""


def answer(asked: Asked, ack: preparationack.PrepareAck | None) -> Answer:
    """Classify the agent's acknowledgement of ``asked`` (an ack of another id is pending)."""
    if ack is None or ack.id != asked.id:
        return Answer(PENDING)
    executed = [a for a in ack.actions if a.outcome == "done"]
    reasons = tuple(f"{a.kind}:{a.detail or a.outcome}" for a in ack.actions if a.outcome != "done")
    if ack.dry_run:
        state, reasons = REFUSED, ("dry-run", *reasons)
    elif ack.freed_bytes >= asked.bytes_wanted:
        state = SERVED
    elif executed:
        state = SHORT
    else:
        state = REFUSED
    return Answer(
        state,
        freed_bytes=ack.freed_bytes,
        headroom_after_bytes=ack.headroom_after_bytes,
        done_at=ack.done_at,
        reasons=reasons,
    )


def headroom_now(
    summary_headroom_bytes: int, summary_sampled_at: float, ans: Answer | None
) -> tuple[int, float]:
    """The node's freshest headroom and when it was measured: the summary's, or the
    agent's measurement after acting when that is newer (both Unix seconds)."""
    if (
        ans is not None
        and ans.done_at is not None
        and ans.headroom_after_bytes is not None
        and ans.done_at > summary_sampled_at
    ):
        return ans.headroom_after_bytes, ans.done_at
    return summary_headroom_bytes, summary_sampled_at


@dataclass(frozen=True)
class Ask:
    """One request to make."""

    node: str
    """Node name."""
    bytes_wanted: int
    """Shortfall to free, bytes."""
    share_bytes: int
    """The node's share of the queued demand, bytes."""
    headroom_bytes: int
    """Its free memory above the high watermark now (headroom without the cache credit), bytes."""


def plan(
    queued_bytes: int,
    nodes: Sequence[pacing.NodeView],
    prep: policy_api.Preparation,
    last_asked: Mapping[str, float],
    now: float,
    *,
    last_wanted: Mapping[str, int] | None = None,
    answers: Mapping[str, Answer] | None = None,
) -> tuple[Ask, ...]:
    """Requests to write now (none when preparation is off or nothing is queued).

    ``last_asked``/``last_wanted``: when each node was last asked, and for how many bytes;
    ``answers``: what became of that request (:func:`answer`), when known.
    """
    wanted_before = last_wanted or {}
    answered = answers or {}
    if not prep.enabled or queued_bytes <= 0:
        return ()
    takers = [n for n in nodes if n.state != pacing.NODE_CLOSED]
    known = [n for n in nodes if n.state != pacing.NODE_STALE and n.headroom_bytes is not None]
    if not takers:
        takers = known
    if not takers:
        return ()
    share = queued_bytes // len(takers)
    asks: list[Ask] = []
    for n in known:
        assert n.headroom_bytes is not None
        free = max(0, n.headroom_bytes - n.cache_credit_bytes)
        shortfall = share - free
        if shortfall < prep.min_bytes:
            continue
        if now - last_asked.get(n.name, float("-inf")) < prep.cooldown_s:
            before = wanted_before.get(n.name)
            if before is None or shortfall < REASK_FACTOR * before:
                continue
            prior = answered.get(n.name)
            if prior is not None and prior.state in (SHORT, REFUSED):
                continue
        asks.append(Ask(n.name, shortfall, share, free))
    return tuple(asks)
