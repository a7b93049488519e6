"""How much memory a node can still hand to starting containers before kswapd wakes.

Headroom is measured against the zone watermarks, not "memory used %" (DESIGN §2.2):
kswapd wakes when a zone's free pages fall below ``low`` and reclaims until ``high``; a
start that pushes the node past that costs reclaim, and on kernels before 6.7 it can stall
every overlayfs mount behind ``shrinker_rwsem``.

For each populated zone we count ``free − high − lowmem_reserve`` and clamp it at zero:

* ``lowmem_reserve`` (the ``protection:`` line, its largest entry) is what the allocator
  keeps back from allocations that could have used a higher zone
  (mm/page_alloc.c ``__zone_watermark_ok``: ``free_pages <= min + z->lowmem_reserve[...]``).
  Without it, DMA and much of DMA32 look like headroom a container can never get.
* Clamping per zone: a zone below its watermark does not take headroom from another zone;
  the allocator falls back across zones before it wakes kswapd.

``headroom = Σ zones + cache credit − reserve``; ``reserve`` is the safety margin.

**Cache credit** (DESIGN §7, "defaults that work on real nodes"). Any node that has run for a
while has filled its memory with page cache: free sits near the high watermark and the
watermark headroom alone is a few hundred MiB, while GiBs of clean file pages wait to be
dropped (measured on the 6.18 host: 1,088 MiB of headroom beside 21.6 GiB of reclaimable
cache). Counting none of it holds paced pods until running pods exit or ``maxGateSeconds``.
On a kernel that is *not* exposed to the ``shrinker_rwsem`` stall (6.7+, lockless shrinkers)
kswapd drops clean inactive file pages cheaply: no writeback, no lock a mount waits for (in
the host's unguarded bursts kswapd scanned 0.9-1.4 M pages with 0-4 allocation stalls). So
there ``cache_credit_ratio`` of the *clean inactive* file pages
(``Inactive(file) − Dirty − Writeback``; active pages would first have to age) counts as
headroom. On an exposed kernel, or one whose exposure is unknown, every kswapd pass can stall
mounts for seconds, and the credit is zero: room must be real free memory there.
"""

from __future__ import annotations

from dataclasses import dataclass

from burstguard.procfs import buddyinfo, snapshot, zoneinfo

DEFAULT_CACHE_CREDIT_RATIO = 0.5
"""Share of clean inactive page cache counted as headroom on kernels not exposed to the
shrinker_rwsem stall (agent ``--cache-credit``, chart ``agent.cacheCredit``). Half, so a
burst never asks kswapd for more than half of what it can drop without touching active or
dirty pages; preparation (drop_caches) remains the way to make the rest real free memory."""

FRAGMENTATION_MIN_ORDER = 4
"""Orders above PAGE_ALLOC_COSTLY_ORDER (3) are "costly": short of them, allocations compact."""


@dataclass(frozen=True)
class ZoneHeadroom:
    """One zone's numbers in bytes."""

    node: int
    """NUMA node id."""
    zone: str
    """Zone name."""
    free_bytes: int
    """Free memory."""
    min_bytes: int | None
    """``min`` watermark (direct reclaim below it)."""
    low_bytes: int | None
    """``low`` watermark (kswapd wakes below it)."""
    high_bytes: int | None
    """``high`` watermark (kswapd sleeps above it)."""
    reserve_bytes: int
    """Largest lowmem_reserve entry: kept back from movable allocations."""
    headroom_bytes: int
    """max(0, free − high − reserve)."""


@dataclass(frozen=True)
class Headroom:
    """A node's memory position relative to its watermarks."""

    headroom_bytes: int
    """Σ zone headroom + cache credit − reserve; may be negative."""
    watermark_headroom_bytes: int
    """Σ zone headroom alone (free above the high watermark and lowmem reserve)."""
    cache_credit_bytes: int
    """Clean inactive page cache counted as headroom (0 on exposed or unknown kernels)."""
    free_bytes: int
    """Σ free over populated zones."""
    min_bytes: int
    """Σ ``min`` watermarks."""
    low_bytes: int
    """Σ ``low`` watermarks."""
    high_bytes: int
    """Σ ``high`` watermarks."""
    reclaimable_bytes: int
    """Inactive(file) + Active(file): page cache that proactive reclaim could free."""
    high_order_free_ratio: float | None
    """Share of free pages in blocks of order ≥ 4 (None without buddyinfo); low = fragmented."""
    below_low_zones: tuple[str, ...]
    """``node/zone`` names whose free pages are under ``low`` right now."""
    zones: tuple[ZoneHeadroom, ...]
    """Per-zone detail."""


def _populated(zone: zoneinfo.Zone) -> bool:
    return zone.managed_pages is None or zone.managed_pages > 0


def high_order_free_ratio(
    buddy: tuple[buddyinfo.BuddyZone, ...], min_order: int = FRAGMENTATION_MIN_ORDER
) -> float | None:
    """Fraction of free pages that sit in blocks of ``min_order`` or larger."""
    total = 0
    high = 0
    for zone in buddy:
        for order, blocks in enumerate(zone.free_blocks):
            pages = blocks << order
            total += pages
            if order >= min_order:
                high += pages
    return None if total == 0 else high / total


def zone_headroom(zone: zoneinfo.Zone, page_size: int) -> ZoneHeadroom:
    """One zone's headroom; a missing ``high`` line counts as 0 (documented in the report)."""
    reserve = max(zone.protection) if zone.protection else 0
    high = zone.high_pages or 0
    return ZoneHeadroom(
        node=zone.node,
        zone=zone.name,
        free_bytes=zone.free_pages * page_size,
        min_bytes=None if zone.min_pages is None else zone.min_pages * page_size,
        low_bytes=None if zone.low_pages is None else zone.low_pages * page_size,
        high_bytes=None if zone.high_pages is None else zone.high_pages * page_size,
        reserve_bytes=reserve * page_size,
        headroom_bytes=max(0, zone.free_pages - high - reserve) * page_size,
    )


def clean_inactive_file_bytes(meminfo: dict[str, int]) -> int:
    """``Inactive(file) − Dirty − Writeback``, at least 0 (bytes): page cache kswapd can drop
    without writing it back first. Dirty/Writeback count all file pages, so this errs low."""
    dirty = meminfo.get("Dirty", 0) + meminfo.get("Writeback", 0)
    return max(0, meminfo.get("Inactive(file)", 0) - dirty)


def cache_credit(meminfo: dict[str, int], ratio: float, exposed: bool | None) -> int:
    """Bytes of page cache counted as headroom: ``ratio`` of the clean inactive file pages on
    a kernel known not to be exposed to the shrinker_rwsem stall, else 0."""
    if exposed is not False or ratio <= 0:
        return 0
    return int(clean_inactive_file_bytes(meminfo) * min(ratio, 1.0))


def assess(
    snap: snapshot.Snapshot,
    reserve_bytes: int = 0,
    *,
    cache_credit_ratio: float = 0.0,
    shrinker_exposed: bool | None = None,
) -> Headroom:
    """Compute the node's headroom from one snapshot, the safety ``reserve_bytes``, and the
    cache credit (``cache_credit_ratio`` of clean inactive file pages, honoured only when
    ``shrinker_exposed`` is False)."""
    zones = tuple(zone_headroom(z, snap.page_size) for z in snap.zones if _populated(z))
    watermark = sum(z.headroom_bytes for z in zones)
    credit = cache_credit(snap.meminfo, cache_credit_ratio, shrinker_exposed)
    below_low = tuple(
        f"{z.node}/{z.zone}"
        for z in zones
        if z.low_bytes is not None and z.free_bytes < z.low_bytes
    )
    return Headroom(
        headroom_bytes=watermark + credit - reserve_bytes,
        watermark_headroom_bytes=watermark,
        cache_credit_bytes=credit,
        free_bytes=sum(z.free_bytes for z in zones),
        min_bytes=sum(z.min_bytes or 0 for z in zones),
        low_bytes=sum(z.low_bytes or 0 for z in zones),
        high_bytes=sum(z.high_bytes or 0 for z in zones),
        reclaimable_bytes=snap.meminfo.get("Inactive(file)", 0)
        + snap.meminfo.get("Active(file)", 0),
        high_order_free_ratio=high_order_free_ratio(snap.buddy),
        below_low_zones=below_low,
        zones=zones,
    )
