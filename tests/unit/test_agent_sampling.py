"""The agent's sampling helpers."""

from __future__ import annotations

import pathlib

import pytest

from burstguard.core import rates
from burstguard.procfs import snapshot

PROC = pathlib.Path(__file__).parent.parent / "fixtures" / "proc"
PAIRS = [
    pytest.param(first, second, id=first)
    for first, second in [
        ("host-6.18-pressure-a", "host-6.18-pressure-b"),
        ("host-6.18-idle", "host-6.18-pressure-b"),
        ("guest-6.1.0-56-pressure-a", "guest-6.1.0-56-pressure-b"),
    ]
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_rates_from_the_reclaim_counters_alone_equal_rates_from_all_of_vmstat(
    first: str, second: str
) -> None:
    a = snapshot.read(str(PROC / first), 0.0).vmstat
    b = snapshot.read(str(PROC / second), 1.0).vmstat
    filtered = rates.reclaim_rates(rates.reclaim_counters(a), rates.reclaim_counters(b), 1.0)
    assert filtered == rates.reclaim_rates(a, b, 1.0)
    assert len(rates.reclaim_counters(b)) < 30
