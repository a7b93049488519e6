"""Lease election decisions (core.leadership): client-go's rules, and never two leaders."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burstguard.core import leadership
from burstguard.core.leadership import LeaseRecord, Observed, Timing

T = Timing()


def test_a_candidate_takes_a_lease_nobody_holds() -> None:
    rec = leadership.attempt("a", Observed(None, 0.0), 100.0, T)
    assert rec == LeaseRecord("a", 15, acquire_time=100.0, renew_time=100.0, transitions=0)


def test_a_candidate_waits_while_the_holders_record_keeps_changing() -> None:
    held = LeaseRecord("b", 15, 0.0, 50.0, 3)
    observed = leadership.observe(None, held, 100.0)
    assert leadership.attempt("a", observed, 114.9, T) is None
    taken = leadership.attempt("a", observed, 115.0, T)
    assert taken is not None
    assert (taken.holder, taken.transitions, taken.acquire_time) == ("a", 4, 115.0)


def test_the_expiry_counts_from_when_this_replica_saw_the_change_not_the_records_clock() -> None:
    """A holder whose clock runs an hour behind still holds the Lease while it renews."""
    old = leadership.observe(None, LeaseRecord("b", 15, 0.0, -3600.0), 100.0)
    renewed = leadership.observe(old, LeaseRecord("b", 15, 0.0, -3598.0), 110.0)
    assert renewed.changed_at == 110.0
    assert leadership.attempt("a", renewed, 120.0, T) is None
    same = leadership.observe(renewed, LeaseRecord("b", 15, 0.0, -3598.0), 124.0)
    assert same.changed_at == 110.0


def test_a_released_lease_is_taken_at_once() -> None:
    released = leadership.release("b", LeaseRecord("b", 15, 0.0, 50.0, 2), 60.0)
    assert released is not None and released.holder == ""
    observed = leadership.observe(None, released, 61.0)
    taken = leadership.attempt("a", observed, 61.0, T)
    assert taken is not None and taken.holder == "a"


def test_only_the_holder_can_release() -> None:
    assert leadership.release("a", LeaseRecord("b", 15), 1.0) is None
    assert leadership.release("a", None, 1.0) is None


def test_the_holder_renews_keeping_its_acquire_time_and_transitions() -> None:
    mine = LeaseRecord("a", 15, acquire_time=10.0, renew_time=20.0, transitions=5)
    renewed = leadership.attempt("a", Observed(mine, 20.0), 22.0, T)
    assert renewed == LeaseRecord("a", 15, acquire_time=10.0, renew_time=22.0, transitions=5)


def test_a_leader_stops_at_the_renew_deadline() -> None:
    assert leadership.leading(100.0, 109.9, T)
    assert not leadership.leading(100.0, 110.0, T)
    assert not leadership.leading(None, 100.0, T)
    assert not leadership.leading(100.0, 99.0, T)  # the clock went back: do not trust it


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(10, 10, 2), (15, 20, 2), (15, 2, 2), (0, 0, 0), (15, 10, -1)],
)
def test_timings_that_could_allow_two_leaders_are_refused(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(leadership.TimingError):
        Timing(duration, deadline, retry)


@dataclass
class Replica:
    identity: str
    observed: Observed | None = None
    renewed_at: float | None = None


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 2),  # which replica tries
            st.floats(0.0, 6.0),  # time since the previous event
            st.booleans(),  # the write reaches the API (False: timeout, lost)
            st.booleans(),  # a clean stop (release) instead of a renewal
        ),
        max_size=120,
    )
)
def test_no_two_replicas_ever_lead_at_once(steps: list[tuple[int, float, bool, bool]]) -> None:
    """Any interleaving of attempts, silences (a killed or stalled replica simply does not
    step), lost writes and releases: at every instant at most one replica may write."""
    replicas = [Replica(f"r{i}") for i in range(3)]
    lease: LeaseRecord | None = None
    version = 0
    now = 0.0
    for who, dt, delivered, stop in steps:
        now += dt
        r = replicas[who]
        leaders = [x for x in replicas if leadership.leading(x.renewed_at, now, T)]
        assert len(leaders) <= 1, (now, leaders)
        read, read_version = lease, version
        r.observed = leadership.observe(r.observed, read, now)
        if stop:
            r.renewed_at = None
            back = leadership.release(r.identity, read, now)
            if back is not None and delivered and version == read_version:
                lease, version = back, version + 1
            continue
        record = leadership.attempt(r.identity, r.observed, now, T)
        if record is not None and delivered and version == read_version:
            lease, version = record, version + 1
            r.renewed_at = now
            r.observed = leadership.observe(r.observed, record, now)
