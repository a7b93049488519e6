"""Preparation requests (operator side): which nodes to ask to make room, and how much.

The queued demand (memory of every gated pod of a policy) is spread evenly over the nodes
that can take pods (open or stale); a node whose headroom is short of its share by at least
``minBytes`` is asked for the shortfall, at most once per ``cooldown``. Stale nodes are
skipped: without a summary the shortfall is unknown. Pure: the operator writes the requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from burstguard.api import policy as policy_api
from burstguard.core import pacing


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
    """Its headroom now, bytes."""


def plan(
    queued_bytes: int,
    nodes: Sequence[pacing.NodeView],
    prep: policy_api.Preparation,
    last_asked: Mapping[str, float],
    now: float,
) -> tuple[Ask, ...]:
    """Requests to write now (none when preparation is off or nothing is queued)."""
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
        shortfall = share - max(0, n.headroom_bytes)
        if shortfall < prep.min_bytes:
            continue
        if now - last_asked.get(n.name, float("-inf")) < prep.cooldown_s:
            continue
        asks.append(Ask(n.name, shortfall, share, n.headroom_bytes))
    return tuple(asks)
