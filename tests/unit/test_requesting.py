"""Preparation planning and the request annotation."""

from __future__ import annotations

from burstguard.api import policy, preparation
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
