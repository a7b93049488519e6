"""Preparation planning and the request annotation."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

from burstguard.api import policy, preparation, preparationack
from burstguard.core import pacing, requesting

MI = 2**20
PREP = policy.Preparation(cooldown_s=60.0, min_bytes=64 * MI)


def node(name: str, headroom_mib: int | None, state: str = "open") -> pacing.NodeView:
    return pacing.NodeView(
        name=name, state=state, headroom_bytes=None if headroom_mib is None else headroom_mib * MI
    )


def test_a_node_short_of_its_share_of_queued_demand_is_asked_for_the_shortfall() -> None:
    asks = requesting.plan(2000 * MI, [node("a", 200), node("b", 5000)], PREP, {}, now=0.0)
    assert [(a.node, a.bytes_wanted) for a in asks] == [("a", 800 * MI)]


def test_a_warm_node_whose_headroom_is_cache_credit_is_asked_for_what_free_memory_lacks() -> None:
    warm = pacing.NodeView(
        name="a", headroom_bytes=6000 * MI, cache_credit_bytes=5800 * MI
    )  # free ≈ the high watermark + 200 MiB; the pacer may still admit 6000 MiB
    asks = requesting.plan(2000 * MI, [warm], PREP, {}, now=0.0)
    assert [(a.node, a.bytes_wanted, a.headroom_bytes) for a in asks] == [
        ("a", 1800 * MI, 200 * MI)
    ]
    cold = pacing.NodeView(name="a", headroom_bytes=6000 * MI)
    assert requesting.plan(2000 * MI, [cold], PREP, {}, now=0.0) == ()


def test_small_shortfalls_and_stale_nodes_are_not_asked() -> None:
    asks = requesting.plan(200 * MI, [node("a", 60), node("b", None, "stale")], PREP, {}, now=0.0)
    assert asks == ()


def test_a_node_is_asked_at_most_once_per_cooldown() -> None:
    nodes = [node("a", 0)]
    assert requesting.plan(1000 * MI, nodes, PREP, {"a": 0.0}, now=30.0) == ()
    assert len(requesting.plan(1000 * MI, nodes, PREP, {"a": 0.0}, now=61.0)) == 1


def test_within_the_cooldown_a_node_is_asked_again_only_when_its_shortfall_doubled() -> None:
    """The first ask goes out while a Job is still creating pods and can be far too small."""
    nodes = [node("a", 0)]
    asked = {"a": 0.0}
    assert requesting.plan(1000 * MI, nodes, PREP, asked, 30.0, last_wanted={"a": 600 * MI}) == ()
    (ask,) = requesting.plan(1200 * MI, nodes, PREP, asked, 30.0, last_wanted={"a": 600 * MI})
    assert ask.bytes_wanted == 1200 * MI


def test_disabled_preparation_asks_nothing() -> None:
    off = policy.Preparation(enabled=False)
    assert requesting.plan(10_000 * MI, [node("a", 0)], off, {}, now=0.0) == ()


def test_requests_round_trip_through_the_annotation() -> None:
    req = preparation.PrepareRequest(
        id="r1", bytes_wanted=5, requested_at=1.5, policy="p", reason="why"
    )
    assert preparation.decode(preparation.encode(req)) == req


def ack(
    request_id: str, freed_mib: int, *outcomes: str, dry_run: bool = False, done_at: float = 10.0
) -> preparationack.PrepareAck:
    return preparationack.PrepareAck(
        id=request_id,
        done_at=done_at,
        dry_run=dry_run,
        bytes_wanted=600 * MI,
        freed_bytes=freed_mib * MI,
        headroom_before_bytes=100 * MI,
        headroom_after_bytes=(100 + freed_mib) * MI,
        actions=tuple(
            preparationack.ActionResult(kind, "", outcome, detail="cooldown" * (outcome != "done"))
            for kind, outcome in (o.split("=") for o in outcomes)
        ),
    )


ASKED = requesting.Asked("r1", at=0.0, bytes_wanted=600 * MI)


@pytest.mark.parametrize(
    ("the_ack", "state"),
    [
        pytest.param(None, requesting.PENDING, id="no-ack-yet"),
        pytest.param(ack("r0", 900, "drop_caches=done"), requesting.PENDING, id="ack-of-older"),
        pytest.param(ack("r1", 900, "drop_caches=done"), requesting.SERVED, id="freed-enough"),
        pytest.param(ack("r1", 200, "compact=done"), requesting.SHORT, id="freed-less"),
        pytest.param(ack("r1", 0, "drop_caches=skipped"), requesting.REFUSED, id="all-skipped"),
        pytest.param(ack("r1", 0, "drop_caches=failed"), requesting.REFUSED, id="all-failed"),
        pytest.param(
            ack("r1", 0, "drop_caches=dry_run", dry_run=True), requesting.REFUSED, id="dry-run"
        ),
    ],
)
def test_an_acknowledgement_is_read_as_the_answer_to_the_request_it_names(
    the_ack: preparationack.PrepareAck | None, state: str
) -> None:
    assert requesting.answer(ASKED, the_ack).state == state


def test_a_refusal_says_which_guardrail_held_the_agent_back() -> None:
    ans = requesting.answer(ASKED, ack("r1", 0, "compact=skipped", "drop_caches=skipped"))
    assert ans.reasons == ("compact:cooldown", "drop_caches:cooldown")


@pytest.mark.parametrize(
    "outcome",
    [pytest.param("drop_caches=skipped", id="refused"), pytest.param("compact=done", id="short")],
)
def test_a_refused_or_short_node_is_not_asked_again_within_the_cooldown_however_the_queue_grows(
    outcome: str,
) -> None:
    nodes = [node("a", 0)]
    answers = {"a": requesting.answer(ASKED, ack("r1", 0, outcome))}
    grown = requesting.plan(
        5000 * MI, nodes, PREP, {"a": 0.0}, 30.0, last_wanted={"a": 600 * MI}, answers=answers
    )
    assert grown == ()
    (later,) = requesting.plan(
        5000 * MI, nodes, PREP, {"a": 0.0}, 61.0, last_wanted={"a": 600 * MI}, answers=answers
    )
    assert later.bytes_wanted == 5000 * MI


def test_a_pending_request_may_still_be_raised_when_the_queue_doubles() -> None:
    answers = {"a": requesting.answer(ASKED, None)}
    (ask,) = requesting.plan(
        1200 * MI,
        [node("a", 0)],
        PREP,
        {"a": 0.0},
        30.0,
        last_wanted={"a": 600 * MI},
        answers=answers,
    )
    assert ask.bytes_wanted == 1200 * MI


def test_the_agents_measurement_after_acting_replaces_an_older_summary() -> None:
    served = requesting.answer(ASKED, ack("r1", 900, "drop_caches=done", done_at=10.0))
    assert requesting.headroom_now(100 * MI, 5.0, served) == (1000 * MI, 10.0)
    assert requesting.headroom_now(700 * MI, 12.0, served) == (700 * MI, 12.0)
    assert requesting.headroom_now(100 * MI, 5.0, requesting.answer(ASKED, None)) == (100 * MI, 5.0)


def test_a_served_request_is_not_asked_again_from_the_summary_sampled_before_it() -> None:
    served = requesting.answer(ASKED, ack("r1", 900, "drop_caches=done", done_at=10.0))
    headroom, _ = requesting.headroom_now(100 * MI, 5.0, served)
    view = pacing.NodeView(name="a", headroom_bytes=headroom)
    assert requesting.plan(1000 * MI, [view], PREP, {"a": 0.0}, 70.0, answers={"a": served}) == ()


@hypothesis.given(
    freed=st.integers(-(2**30), 2**34),
    wanted=st.integers(1, 2**34),
    outcomes=st.lists(st.sampled_from(["done", "skipped", "failed"]), max_size=3),
    dry_run=st.booleans(),
)
def test_only_an_executed_ack_that_freed_the_want_counts_as_served(
    freed: int, wanted: int, outcomes: list[str], dry_run: bool
) -> None:
    asked = requesting.Asked("r", 0.0, wanted)
    the_ack = preparationack.PrepareAck(
        id="r",
        done_at=1.0,
        dry_run=dry_run,
        bytes_wanted=wanted,
        freed_bytes=freed,
        headroom_before_bytes=0,
        headroom_after_bytes=freed,
        actions=tuple(preparationack.ActionResult("compact", "", o) for o in outcomes),
    )
    state = requesting.answer(asked, the_ack).state
    assert (state == requesting.SERVED) == (not dry_run and freed >= wanted)
    assert (state == requesting.SHORT) == (not dry_run and freed < wanted and "done" in outcomes)
