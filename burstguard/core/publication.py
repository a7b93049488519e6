"""When a node summary is worth an API write: one pure rule for the agent and the simulated fleet.

A summary is written

* at once when the node's state changes (Open <-> Closed): a closing node must be seen
  within one API round trip;
* at once when headroom moved by ``step_bytes`` or more since the last write, and at least
  ``min_gap_s`` after it. A rise is memory freed by reclaim, preparation or finished pods,
  and the pacer cannot release into room it has not seen; a fall is memory taken by pods
  that finished starting (no longer in the pacer's own count of starting pods), and room
  the pacer still believes in is released into twice (the operator also charges such
  starts itself until a later summary, see core.pacing). Measured on the demo's guarded
  burst (20 simulated nodes, 600 pods x 256 MiB): without this rule 10 nodes entered
  reclaim, makespan 25.9 s, 186 summaries; with it 6 nodes, 21.2 s, 498 summaries;
* at once when the reasons changed (at least ``min_gap_s`` after the last write): a closed
  node whose trouble ended (``reclaim-active`` -> ``reopen-hold``) must be seen then, because
  readers start their reopen hold at the first healthy sample they see. Without it the
  operator saw the end of the trouble only when the agent itself reopened, and held the node
  closed for a second hold on top (measured on the 6.18 host: about 10 s closed after kswapd
  stopped, twice the 5 s hold);
* otherwise every ``interval_s`` (the heartbeat that keeps the summary fresh).

So a quiet fleet of N nodes costs N / interval_s writes per second, and a node adds at most
one write per ``min_gap_s`` while its memory moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

INTERVAL_S: Final = 10.0
"""Heartbeat: longest gap between two writes, seconds."""
STEP_BYTES: Final = 256 * 2**20
"""Headroom change that is written early, bytes (one default pod start)."""
MIN_GAP_S: Final = 1.0
"""Shortest gap between two writes for a change, seconds (a state change never waits)."""


@dataclass(frozen=True)
class Published:
    """The last summary written (or handed to the writer)."""

    state: str
    """Its state (``Open``/``Closed``)."""
    headroom_bytes: int
    """Its headroom, bytes."""
    at: float
    """When, seconds (any monotonic clock, the same as ``now``)."""
    reasons: tuple[str, ...] = ()
    """Its reasons (why the state is what it is)."""


def due(
    last: Published | None,
    state: str,
    headroom_bytes: int,
    now: float,
    *,
    interval_s: float = INTERVAL_S,
    step_bytes: int = STEP_BYTES,
    min_gap_s: float = MIN_GAP_S,
    reasons: tuple[str, ...] | None = None,
) -> bool:
    """True when a summary with ``state``, ``headroom_bytes`` and ``reasons`` (None: not
    compared) should be written at ``now``."""
    if last is None or last.state != state:
        return True
    since = now - last.at
    if since >= interval_s:
        return True
    changed = reasons is not None and tuple(reasons) != last.reasons
    moved = abs(headroom_bytes - last.headroom_bytes) >= step_bytes
    return since >= min_gap_s and (moved or changed)
