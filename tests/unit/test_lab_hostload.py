"""Host load around lab boots: when a run counts as busy, and waiting for a quiet host."""

from __future__ import annotations

import pytest

from burstguard.lab import hostload


@pytest.mark.parametrize(
    ("before", "after", "busy"),
    [
        pytest.param(0.3, 2.4, False, id="the-guest-alone-keeps-its-two-vcpus-busy"),
        pytest.param(2.5, 2.4, True, id="busy-before-the-boot"),
        pytest.param(0.3, 4.5, True, id="other-work-during-the-boot"),
        pytest.param(2.0, 4.0, False, id="exactly-one-per-core-is-not-busy"),
    ],
)
def test_a_run_is_busy_when_other_work_exceeds_one_load_per_core(
    before: float, after: float, busy: bool
) -> None:
    load = hostload.HostLoad(before=before, after=after, cores=2, guest_cpus=2)
    assert load.busy is busy


def test_settle_waits_until_the_load_falls_under_the_threshold() -> None:
    readings = iter([3.0, 2.0, 0.9, 0.5])
    slept: list[float] = []
    reached = hostload.settle(60, threshold=1.0, read=lambda: next(readings), sleep=slept.append)
    assert reached == 0.9
    assert sum(slept) == 10.0


def test_settle_gives_up_on_a_host_that_stays_busy() -> None:
    slept: list[float] = []
    assert hostload.settle(20, threshold=1.0, read=lambda: 5.0, sleep=slept.append) is None
    assert sum(slept) == 20.0
