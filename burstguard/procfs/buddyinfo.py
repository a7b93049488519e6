"""Parse /proc/buddyinfo: free blocks per order for each zone.

Column k counts free blocks of 2**k pages. Few blocks at high orders means fragmentation:
allocations above PAGE_ALLOC_COSTLY_ORDER (3) then trigger compaction stalls
(mm/page_alloc.c), which compaction ahead of a burst avoids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from burstguard.procfs import _lines, errors

_LINE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)$")


@dataclass(frozen=True)
class BuddyZone:
    """Free-block counts of one zone."""

    node: int
    """NUMA node id."""
    zone: str
    """Zone name."""
    free_blocks: tuple[int, ...]
    """Number of free blocks per order (index = order; a block is 2**order pages)."""


def parse(text: str, path: str = "/proc/buddyinfo") -> tuple[BuddyZone, ...]:
    """Parse every zone line; raise ProcParseError on anything else."""
    _lines.require_text(path, text)
    out: list[BuddyZone] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        match = _LINE.match(raw)
        if match is None:
            raise errors.ProcParseError(path, f"line {lineno}: malformed line {raw!r}")
        counts = tuple(_lines.to_int(path, lineno, t) for t in match.group(3).split())
        if not counts:
            raise errors.ProcParseError(path, f"line {lineno}: no free-block counts")
        out.append(BuddyZone(int(match.group(1)), match.group(2), counts))
    return tuple(out)
