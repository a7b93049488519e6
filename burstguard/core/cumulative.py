"""Windows from cumulative counts: the increase between two readings of counters that only grow.

bpftrace's ``print(@m); clear(@m)`` is not atomic: an event that lands between the print
and the clear is counted in neither window. The scripts therefore print their maps
cumulatively and never clear them; a window is the difference between two readings. Nothing
is lost at a boundary, since each event is in every reading after it happened, so it is
counted in exactly one difference. Pure: readings in, increases out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

K = TypeVar("K")


def increase(previous: Mapping[K, int], current: Mapping[K, int]) -> dict[K, int]:
    """Per key, how much ``current`` grew since ``previous``; keys that did not grow are left out.

    A key whose count went down belongs to a restarted source (its maps started from zero), so
    its whole current value is the increase. A key missing from ``current`` is treated as
    zero (bpftrace does not print empty maps).
    """
    out: dict[K, int] = {}
    for key, now in current.items():
        before = previous.get(key, 0)
        grown = now - before if now >= before else now
        if grown > 0:
            out[key] = grown
    return out
