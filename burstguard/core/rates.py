"""Reclaim activity as per-second rates between two vmstat samples.

A non-zero ``pgscan_kswapd`` rate rose 0.8-2.8 s before the first allocation stall in the
measurements behind DESIGN §2.2, so rates, not instantaneous "free < low" checks, drive the
node state. Counters are made safe the way Prometheus' ``rate()`` is: a counter that went
down was reset (agent or kernel restart) and its new value is the increase. Kernel naming
differences are absorbed here: before 4.8 ``allocstall`` was one counter and ``pgscan_*``
were per zone (``pgscan_kswapd_normal``), so each rate sums a name and its per-zone forms.
"""

from __future__ import annotations

from collections.abc import Mapping

from burstguard.api import nodesummary

_COUNTERS = tuple(nodesummary.ReclaimRates.__dataclass_fields__)
"""Each rate is named after the vmstat counter (family) it comes from."""


def _family_total(counters: Mapping[str, int], base: str) -> int | None:
    """Sum ``base`` and ``base_<zone>`` counters; None when the kernel has none of them."""
    found = False
    total = 0
    for name, value in counters.items():
        if name == base or (name.startswith(base + "_") and name != "pgscan_direct_throttle"):
            found = True
            total += value
    return total if found else None


def counter_increase(prev: int | None, cur: int | None) -> int:
    """Increase of a monotonic counter; a decrease means it was reset, so ``cur`` is new."""
    if prev is None or cur is None:
        return 0
    return cur - prev if cur >= prev else cur


def reclaim_counters(counters: Mapping[str, int]) -> dict[str, int]:
    """The dozen vmstat counters the rates are made of (of ~200 lines).

    Filtering once keeps a 4 Hz caller's rate step at microseconds: scanning every counter
    once per rate family cost ~1 ms of CPU per sample on the build VM.
    """
    return {k: v for k, v in counters.items() if k.startswith(_COUNTERS)}


def reclaim_rates(
    prev: Mapping[str, int], cur: Mapping[str, int], elapsed_s: float
) -> nodesummary.ReclaimRates:
    """Per-second rates of the reclaim counters; zeros when ``elapsed_s`` is not positive."""
    if elapsed_s <= 0:
        return nodesummary.ReclaimRates()
    prev, cur = reclaim_counters(prev), reclaim_counters(cur)
    values = {
        name: counter_increase(_family_total(prev, name), _family_total(cur, name)) / elapsed_s
        for name in _COUNTERS
    }
    return nodesummary.ReclaimRates(**values)


def missing_counters(counters: Mapping[str, int]) -> tuple[str, ...]:
    """Which reclaim counters this kernel does not expose (reported, rates read as 0)."""
    return tuple(name for name in _COUNTERS if _family_total(counters, name) is None)
