"""The node state machine: closes fast, reopens only after a healthy hold, never flaps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from burstguard.core import nodestate
from burstguard.core.nodestate import Machine, Observation, Params, State

PARAMS = Params(close_below_bytes=1_000, reopen_margin=1.5, reopen_hold_s=5.0, stale_after_s=3.0)


def run(
    observations: list[tuple[float, Observation | None]], params: Params = PARAMS
) -> list[Machine]:
    machine = Machine()
    history = []
    for now, obs in observations:
        machine = nodestate.step(machine, obs, params, now)
        history.append(machine)
    return history


def obs(t: float, headroom: int, reclaim: bool = False, latency: bool = False) -> Observation:
    return Observation(
        sampled_at=t, headroom_bytes=headroom, reclaim_active=reclaim, latency_over=latency
    )


def test_a_new_machine_is_stale_until_it_sees_a_sample() -> None:
    assert Machine().state is State.STALE
    assert nodestate.step(Machine(), obs(0, 5_000), PARAMS, 0).state is State.OPEN


def test_closes_at_once_when_headroom_falls_under_the_threshold() -> None:
    history = run([(0, obs(0, 5_000)), (1, obs(1, 999))])
    assert history[-1].state is State.CLOSED and history[-1].reasons == ("headroom-low",)


def test_closes_on_reclaim_activity_even_with_headroom() -> None:
    assert run([(0, obs(0, 5_000, reclaim=True))])[-1].reasons == ("reclaim-active",)


def test_reclaim_is_ignored_when_the_policy_says_so() -> None:
    params = Params(close_below_bytes=1_000, close_on_reclaim=False)
    assert run([(0, obs(0, 5_000, reclaim=True))], params)[-1].state is State.OPEN


def test_closes_on_lock_or_mount_latency() -> None:
    assert run([(0, obs(0, 5_000, latency=True))])[-1].reasons == ("latency-high",)


def test_does_not_reopen_between_threshold_and_margin() -> None:
    history = run([(0, obs(0, 500))] + [(t, obs(t, 1_400)) for t in range(1, 30)])
    assert all(m.state is State.CLOSED for m in history)


def test_reopens_after_the_hold_time_above_the_margin() -> None:
    history = run([(0, obs(0, 500))] + [(t, obs(t, 2_000)) for t in range(1, 10)])
    states = [m.state for m in history]
    assert states[:6] == [State.CLOSED] * 6  # healthy from t=1, hold 5 s
    assert states[6] is State.OPEN  # t=6


def test_the_hold_counts_from_when_the_healthy_sample_was_taken_not_when_it_was_read() -> None:
    # A reader of published summaries sees the healthy sample taken at t=1 only at t=3.
    seen = [(0, obs(0, 500)), (3, obs(1, 2_000)), (5.9, obs(5, 2_000)), (6, obs(5, 2_000))]
    history = run(seen)
    assert [m.state for m in history] == [State.CLOSED, State.CLOSED, State.CLOSED, State.OPEN]


def test_a_healthy_sample_older_than_the_closure_does_not_shorten_the_hold() -> None:
    history = run([(0, obs(0, 500)), (0.5, obs(-2, 2_000)), (4.9, obs(4, 2_000))])
    assert history[-1].state is State.CLOSED


def test_a_dip_restarts_the_hold() -> None:
    seq = [
        (0, obs(0, 500)),
        (1, obs(1, 2_000)),
        (4, obs(4, 1_200)),
        (5, obs(5, 2_000)),
        (9, obs(9, 2_000)),
    ]
    assert run(seq)[-1].state is State.CLOSED
    assert run([*seq, (10, obs(10, 2_000))])[-1].state is State.OPEN


def test_an_old_sample_makes_the_node_stale() -> None:
    history = run([(0, obs(0, 5_000)), (10, obs(0, 5_000))])
    assert history[-1].state is State.STALE and history[-1].reasons == ("no-fresh-summary",)
    assert run([(0, obs(0, 5_000)), (1, None)])[-1].state is State.STALE


def test_a_closed_node_that_went_stale_comes_back_closed() -> None:
    seq = [(0, obs(0, 500)), (1, None), (2, obs(2, 5_000))]
    assert run(seq)[-1].state is State.CLOSED


# --- properties -----------------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.floats(min_value=0.05, max_value=4.0),  # time to the next step
        st.integers(min_value=0, max_value=3_000),  # headroom
        st.booleans(),  # reclaim active
        st.booleans(),  # latency over
        st.sampled_from(["fresh", "fresh", "fresh", "none", "old"]),  # sample freshness
    ),
    min_size=1,
    max_size=60,
)


def timeline(
    raw: list[tuple[float, int, bool, bool, str]], headroom_bonus: int = 0
) -> list[tuple[float, Observation | None]]:
    out: list[tuple[float, Observation | None]] = []
    now = 0.0
    for dt, head, reclaim, latency, fresh in raw:
        now += dt
        if fresh == "none":
            out.append((now, None))
        else:
            sampled = now if fresh == "fresh" else now - 10.0
            out.append((now, obs(sampled, head + headroom_bonus, reclaim, latency)))
    return out


@settings(max_examples=400, deadline=None)
@given(steps)
def test_never_reopens_sooner_than_the_hold_time_after_closing(
    raw: list[tuple[float, int, bool, bool, str]],
) -> None:
    tl = timeline(raw)
    history = run(tl)
    closed_at: float | None = None
    for (now, _), machine in zip(tl, history, strict=True):
        if machine.state is State.CLOSED and closed_at is None:
            closed_at = now
        if machine.state is State.OPEN:
            if closed_at is not None:
                assert now - closed_at >= PARAMS.reopen_hold_s
            closed_at = None


@settings(max_examples=400, deadline=None)
@given(steps, st.integers(min_value=0, max_value=3_000))
def test_more_headroom_never_makes_a_node_more_closed(
    raw: list[tuple[float, int, bool, bool, str]], bonus: int
) -> None:
    low = run(timeline(raw))
    high = run(timeline(raw, headroom_bonus=bonus))
    for a, b in zip(low, high, strict=True):
        if a.state is State.OPEN:
            assert b.state is State.OPEN
        assert (a.state is State.STALE) == (b.state is State.STALE)
