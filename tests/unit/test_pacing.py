"""Pacing: what one tick releases, checked by example and by property."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from burstguard.api import policy
from burstguard.core import pacing, placement

MI = 2**20


def pacing_rules(**overrides: object) -> policy.Pacing:
    """Rules with a fixed start limit of 8 (the tests count against it, not the default)."""
    rules = policy.Pacing(pod_startup_memory_bytes=100 * MI, max_starting_per_node=8)
    return dataclasses.replace(rules, **overrides)  # type: ignore[arg-type]


def pod(n: int, priority: int = 0, cost_mib: int | None = None) -> pacing.QueuedPod:
    return pacing.QueuedPod(
        key=f"ns/p{n:04d}",
        created_at=1000.0 + n,
        priority=priority,
        cost_bytes=cost_mib * MI if cost_mib else None,
    )


def node(
    name: str, *, starting: int = 0, headroom_mib: int | None = 10_000, state: str = "open"
) -> pacing.NodeView:
    return pacing.NodeView(
        name=name,
        state=state,
        starting=starting,
        headroom_bytes=None if headroom_mib is None else headroom_mib * MI,
    )


def full(rate: float = 50.0, capacity: float = 100.0) -> pacing.TokenBucket:
    return pacing.full_bucket(rate, capacity, now=0.0)


class TestBudget:
    def test_budget_is_the_smaller_of_start_slots_and_headroom_over_pod_cost(self) -> None:
        assert (
            pacing.budget(
                max_starting_per_node=8,
                starting=2,
                headroom_bytes=350 * MI,
                pod_cost_bytes=100 * MI,
            )
            == 3
        )
        assert (
            pacing.budget(
                max_starting_per_node=8,
                starting=6,
                headroom_bytes=10_000 * MI,
                pod_cost_bytes=100 * MI,
            )
            == 2
        )

    def test_a_stale_node_falls_back_to_the_in_flight_limit_alone(self) -> None:
        assert (
            pacing.budget(
                max_starting_per_node=8, starting=3, headroom_bytes=None, pod_cost_bytes=MI
            )
            == 5
        )

    def test_the_per_core_limit_caps_concurrency_on_small_nodes(self) -> None:
        got = pacing.budget(
            max_starting_per_node=8,
            starting=1,
            headroom_bytes=10_000 * MI,
            pod_cost_bytes=MI,
            max_starting_per_core=1.0,
            cores=2.0,
        )
        assert got == 1

    def test_negative_headroom_and_overfull_nodes_give_zero_not_negative(self) -> None:
        assert (
            pacing.budget(
                max_starting_per_node=8, starting=10, headroom_bytes=-5, pod_cost_bytes=MI
            )
            == 0
        )


class TestTokenBucket:
    def test_refill_adds_rate_times_elapsed_up_to_capacity(self) -> None:
        b = pacing.spend(full(rate=10, capacity=20), 20)
        assert pacing.available(pacing.refill(b, 0.5)) == 5
        assert pacing.available(pacing.refill(b, 100.0)) == 20

    def test_time_running_backwards_adds_nothing(self) -> None:
        b = pacing.spend(full(), 100)
        assert pacing.refill(b, -5.0).tokens == 0


class TestPlan:
    def test_releases_nothing_while_every_node_is_closed(self) -> None:
        p = pacing.plan(
            [pod(i) for i in range(10)],
            [node("a", state="closed")],
            pacing_rules(),
            bucket=full(),
            now=0.0,
        )
        assert p.release == () and p.limited_by == "nodes"

    def test_releases_in_priority_then_age_then_name_order(self) -> None:
        queue = [pod(3), pod(1), pod(2, priority=5), pod(0)]
        p = pacing.plan(queue, [node("a", starting=5)], pacing_rules(), bucket=full(), now=0.0)
        assert [q.key for q in p.release] == ["ns/p0002", "ns/p0000", "ns/p0001"]

    def test_a_big_pod_at_the_head_is_not_overtaken_by_smaller_ones(self) -> None:
        queue = [pod(0, cost_mib=5000), pod(1, cost_mib=10)]
        p = pacing.plan(
            queue, [node("a", headroom_mib=1000)], pacing_rules(), bucket=full(), now=0.0
        )
        assert p.release == ()

    def test_the_token_bucket_limits_a_tick_when_nodes_have_room(self) -> None:
        nodes = [node(f"n{i}") for i in range(100)]
        p = pacing.plan(
            [pod(i) for i in range(500)], nodes, pacing_rules(), bucket=full(capacity=30), now=0.0
        )
        assert len(p.release) == 30 and p.limited_by == "bucket"

    def test_pods_in_flight_use_up_room_before_new_releases(self) -> None:
        p = pacing.plan(
            [pod(i) for i in range(10)],
            [node("a")],
            pacing_rules(),
            bucket=full(),
            now=0.0,
            in_flight=[100 * MI] * 6,
        )
        assert len(p.release) == 2

    def test_memory_the_summary_cannot_show_yet_is_taken_off_the_headroom(self) -> None:
        """A node whose last wave of starts is not in its summary has that much less room."""
        rules = pacing_rules(max_starting_per_node=10)
        roomy = dataclasses.replace(node("a", headroom_mib=600), committed_bytes=0)
        spent = dataclasses.replace(roomy, committed_bytes=400 * MI)
        for view, expected in ((roomy, 6), (spent, 2)):
            p = pacing.plan(
                [pod(i) for i in range(10)], [view], rules, bucket=full(), now=0.0, pin=True
            )
            assert len(p.release) == expected
            assert p.capacity == expected

    def test_stale_nodes_are_paced_by_the_in_flight_limit(self) -> None:
        p = pacing.plan(
            [pod(i) for i in range(50)],
            [node("a", headroom_mib=None, state="stale", starting=3)],
            pacing_rules(),
            bucket=full(),
            now=0.0,
        )
        assert len(p.release) == 5

    def test_overdue_pods_are_found_whatever_the_budget(self) -> None:
        late = pacing.overdue([pod(0), pod(500)], max_gate_seconds=600, now=1700.0)
        assert [q.key for q in late] == ["ns/p0000"]


nodes_strategy = st.lists(
    st.builds(
        pacing.NodeView,
        name=st.uuids().map(str),
        state=st.sampled_from(["open", "closed", "stale"]),
        starting=st.integers(0, 12),
        headroom_bytes=st.one_of(st.none(), st.integers(-500 * MI, 4000 * MI)),
        cores=st.one_of(st.none(), st.floats(0.5, 64)),
    ),
    max_size=12,
    unique_by=lambda n: n.name,
)
queue_strategy = st.lists(
    st.builds(
        pacing.QueuedPod,
        key=st.uuids().map(str),
        created_at=st.floats(0, 1000),
        priority=st.integers(-2, 2),
        cost_bytes=st.one_of(st.none(), st.integers(1, 1500 * MI)),
    ),
    max_size=60,
    unique_by=lambda q: q.key,
)
rules_strategy = st.builds(
    policy.Pacing,
    max_starting_per_node=st.integers(1, 10),
    max_starting_per_core=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    pod_startup_memory_bytes=st.integers(MI, 512 * MI),
)


class TestPlanProperties:
    @settings(max_examples=120, deadline=None)
    @given(
        queue=queue_strategy,
        nodes=nodes_strategy,
        rules=rules_strategy,
        tokens=st.floats(0, 80),
        dt=st.floats(0, 5),
    )
    def test_never_exceeds_the_bucket_nor_the_node_budgets_and_keeps_order(
        self,
        queue: list[pacing.QueuedPod],
        nodes: list[pacing.NodeView],
        rules: policy.Pacing,
        tokens: float,
        dt: float,
    ) -> None:
        bucket = pacing.TokenBucket(rate=10.0, capacity=80.0, tokens=tokens, updated_at=0.0)
        p = pacing.plan(queue, nodes, rules, bucket=bucket, now=dt)
        # Bucket: never more than the whole tokens available after refill.
        assert len(p.release) <= pacing.available(pacing.refill(bucket, dt))
        assert p.bucket.tokens >= 0
        # Per-node budgets: slots and bytes both respected for each node used.
        by_name = {n.name: n for n in nodes}
        for name, count in p.placements.items():
            n = by_name[name]
            assert n.state != "closed"
            slots = pacing.start_slots(
                max_starting_per_node=rules.max_starting_per_node,
                starting=n.starting,
                max_starting_per_core=rules.max_starting_per_core,
                cores=n.cores,
            )
            assert count <= slots
        assert sum(p.placements.values()) == len(p.release)
        # Cluster: never more than the sum of per-node start slots.
        total_slots = sum(
            pacing.start_slots(
                max_starting_per_node=rules.max_starting_per_node,
                starting=n.starting,
                max_starting_per_core=rules.max_starting_per_core,
                cores=n.cores,
            )
            for n in nodes
            if n.state != "closed"
        )
        assert len(p.release) <= total_slots
        # Order: the releases are exactly the head of the ordered queue.
        ordered = sorted(queue, key=pacing.order_key)
        assert list(p.release) == ordered[: len(p.release)]

    @settings(max_examples=80, deadline=None)
    @given(queue=queue_strategy, nodes=nodes_strategy, rules=rules_strategy)
    def test_with_uniform_pods_releases_never_exceed_the_sum_of_budgets(
        self, queue: list[pacing.QueuedPod], nodes: list[pacing.NodeView], rules: policy.Pacing
    ) -> None:
        uniform = [dataclasses.replace(q, cost_bytes=None) for q in queue]
        p = pacing.plan(uniform, nodes, rules, bucket=full(capacity=1000), now=0.0)
        assert len(p.release) <= p.capacity

    @settings(max_examples=40, deadline=None)
    @given(
        rate=st.floats(0.5, 500),
        capacity=st.integers(1, 200),
        ticks=st.lists(st.floats(0.001, 2), min_size=1, max_size=50),
    )
    def test_releases_over_any_window_stay_within_burst_plus_rate_times_time(
        self, rate: float, capacity: int, ticks: list[float]
    ) -> None:
        rules = pacing_rules(max_starting_per_node=1000)
        bucket = pacing.full_bucket(rate, capacity, 0.0)
        queue = [pod(i) for i in range(5000)]
        nodes = [node(f"n{i}", headroom_mib=None, state="stale") for i in range(20)]
        now, total = 0.0, 0
        for dt in ticks:
            now += dt
            p = pacing.plan(queue[total:], nodes, rules, bucket=bucket, now=now)
            bucket, total = p.bucket, total + len(p.release)
        assert total <= capacity + rate * now + 1e-6


class TestPinning:
    def test_each_release_is_pinned_to_a_node_with_room_that_fits_the_pod(self) -> None:
        zone_b = placement.Constraints(node_selector=(("zone", "b"),))
        nodes = [
            pacing.NodeView(name="a", labels={"zone": "a"}, headroom_bytes=10_000 * MI),
            pacing.NodeView(name="b", labels={"zone": "b"}, headroom_bytes=500 * MI),
        ]
        queue = [dataclasses.replace(pod(i), constraints=zone_b) for i in range(3)]
        p = pacing.plan(queue, nodes, pacing_rules(), bucket=full(), now=0.0, pin=True)
        assert [p.targets[q.key] for q in p.release] == ["b", "b", "b"]

    def test_per_node_limits_hold_for_pinned_releases(self) -> None:
        nodes = [
            pacing.NodeView(name=f"n{i}", headroom_bytes=None, state="stale") for i in range(3)
        ]
        rules = pacing_rules(max_starting_per_node=2)
        p = pacing.plan([pod(i) for i in range(20)], nodes, rules, bucket=full(), now=0.0, pin=True)
        per_node: dict[str | None, int] = {}
        for q in p.release:
            per_node[p.targets[q.key]] = per_node.get(p.targets[q.key], 0) + 1
        assert per_node == {"n0": 2, "n1": 2, "n2": 2}

    def test_a_pod_that_fits_no_guarded_node_is_released_unpinned(self) -> None:
        elsewhere = placement.Constraints(node_selector=(("pool", "other"),))
        queue = [dataclasses.replace(pod(0), constraints=elsewhere)]
        p = pacing.plan(
            queue, [node("a", state="closed")], pacing_rules(), bucket=full(), now=0.0, pin=True
        )
        assert p.targets == {"ns/p0000": None} and len(p.release) == 1

    def test_untolerated_taints_and_name_fields_are_respected(self) -> None:
        tainted = ("a", {}, (placement.Taint("dedicated", "x", "NoSchedule"),))
        assert not placement.feasible(placement.Constraints(), *tainted)
        tolerant = placement.Constraints(
            tolerations=(placement.Toleration("dedicated", "Equal", "x", "NoSchedule"),)
        )
        assert placement.feasible(tolerant, *tainted)
        only_b = placement.Constraints(
            terms=(placement.Term(fields=(policy.Requirement("metadata.name", "In", ("b",)),)),)
        )
        assert not placement.feasible(only_b, "a", {}, ()) and placement.feasible(
            only_b, "b", {}, ()
        )
