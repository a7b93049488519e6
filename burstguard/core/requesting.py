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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from burstguard.api import policy as policy_api
from burstguard.core import pacing

REASK_FACTOR: Final = 2.0
"""A node may be asked again within the cooldown once its shortfall is this many times what
it was last asked for."""


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
    *,
    last_wanted: Mapping[str, int] | None = None,
) -> tuple[Ask, ...]:
    """Requests to write now (none when preparation is off or nothing is queued).

    ``last_asked``/``last_wanted``: when each node was last asked, and for how many bytes.
    """
    wanted_before = last_wanted or {}
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
            before = wanted_before.get(n.name)
            if before is None or shortfall < REASK_FACTOR * before:
                continue
        asks.append(Ask(n.name, shortfall, share, n.headroom_bytes))
    return tuple(asks)
