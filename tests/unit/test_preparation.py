"""Node-side preparation plans: cheapest first, guardrails, never slab on exposed kernels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from burstguard.core import preparation

GI = 1024**3
CG = "/sys/fs/cgroup/batch.slice"


@dataclass
class NodeBuilder:
    headroom: int = 0
    reclaimable: int = 10 * GI
    high_order: float | None = 0.05
    kswapd_busy: bool = False
    kcompactd_busy: bool = False
    exposed: bool | None = False

    def build(self) -> preparation.NodeView:
        return preparation.NodeView(
            headroom_bytes=self.headroom,
            reclaimable_bytes=self.reclaimable,
            high_order_free_ratio=self.high_order,
            kswapd_busy=self.kswapd_busy,
            kcompactd_busy=self.kcompactd_busy,
            shrinker_exposed=self.exposed,
        )


ALL_ON = preparation.Params(cgroup_reclaim=True, cgroups=(CG,), drop_page_cache=True)


def kinds(p: preparation.Plan) -> list[str]:
    return [a.kind for a in p.actions]


def plan(
    want: int = GI,
    node: NodeBuilder | None = None,
    history: tuple[preparation.Record, ...] = (),
    params: preparation.Params = ALL_ON,
    now: float = 10_000.0,
) -> preparation.Plan:
    return preparation.plan(
        want, "request:r1", (node or NodeBuilder()).build(), history=history, params=params, now=now
    )


class TestOrder:
    def test_compaction_then_cgroup_reclaim_then_page_cache(self) -> None:
        assert kinds(plan()) == ["compact", "cgroup_reclaim", "drop_caches"]

    def test_compaction_only_when_high_order_blocks_are_scarce(self) -> None:
        p = plan(node=NodeBuilder(high_order=0.6))
        assert "compact" not in kinds(p)
        assert preparation.Skip("compact", "", "high-order-blocks-plentiful") in p.skipped

    def test_cgroup_reclaim_asks_at_most_the_want_and_the_per_cgroup_cap(self) -> None:
        p = plan(
            want=5 * GI, params=replace(ALL_ON, cgroups=(CG, CG + "2"), cgroup_max_bytes=3 * GI)
        )
        assert [(a.target, a.bytes) for a in p.actions if a.kind == "cgroup_reclaim"] == [
            (CG, 3 * GI),
            (CG + "2", 2 * GI),
        ]

    def test_nothing_but_compaction_when_nothing_is_wanted(self) -> None:
        assert kinds(plan(want=0)) == ["compact"]

    def test_disabled_actions_are_not_planned(self) -> None:
        assert kinds(plan(params=preparation.Params())) == ["compact"]


class TestSlab:
    @pytest.mark.parametrize(
        "exposed", [pytest.param(True, id="exposed"), pytest.param(None, id="unknown")]
    )
    def test_slab_is_never_dropped_on_an_exposed_or_unknown_kernel(
        self, exposed: bool | None
    ) -> None:
        p = plan(node=NodeBuilder(exposed=exposed), params=replace(ALL_ON, drop_slab=True))
        assert [a.target for a in p.actions if a.kind == "drop_caches"] == ["1"]
        assert not preparation.drop_caches_value_allowed("3", exposed)
        assert not preparation.drop_caches_value_allowed("2", exposed)

    def test_slab_drop_needs_the_switch_and_a_kernel_known_unexposed(self) -> None:
        p = plan(node=NodeBuilder(exposed=False), params=replace(ALL_ON, drop_slab=True))
        assert [a.target for a in p.actions if a.kind == "drop_caches"] == ["3"]
        assert [a.target for a in plan().actions if a.kind == "drop_caches"] == ["1"]


class TestGuardrails:
    def test_an_action_inside_its_cooldown_is_skipped(self) -> None:
        history = (preparation.Record("compact", 9_990.0),)
        p = plan(history=history)
        assert "compact" not in kinds(p)
        assert preparation.Skip("compact", "", "cooldown") in p.skipped

    def test_cooldowns_are_per_cgroup(self) -> None:
        history = (preparation.Record("cgroup_reclaim", 9_990.0, CG),)
        p = plan(history=history, params=replace(ALL_ON, cgroups=(CG, CG + "2")))
        assert [a.target for a in p.actions if a.kind == "cgroup_reclaim"] == [CG + "2"]

    def test_the_hourly_budget_counts_only_the_last_hour(self) -> None:
        params = replace(ALL_ON, per_hour=2, compaction_cooldown_s=1.0)
        recent = (preparation.Record("compact", 9_000.0), preparation.Record("compact", 9_500.0))
        assert "compact" not in kinds(plan(history=recent, params=params))
        old = (preparation.Record("compact", 1_000.0), preparation.Record("compact", 9_500.0))
        assert "compact" in kinds(plan(history=old, params=params))

    def test_reclaim_waits_while_kswapd_scans_and_compaction_while_kcompactd_runs(self) -> None:
        p = plan(node=NodeBuilder(kswapd_busy=True, kcompactd_busy=True))
        assert kinds(p) == []
        assert {s.reason for s in p.skipped} == {"kswapd-busy", "kcompactd-busy"}

    def test_busy_skips_can_be_turned_off(self) -> None:
        p = plan(node=NodeBuilder(kswapd_busy=True), params=replace(ALL_ON, skip_when_busy=False))
        assert kinds(p) == ["compact", "cgroup_reclaim", "drop_caches"]

    def test_no_cache_drop_without_page_cache(self) -> None:
        assert "drop_caches" not in kinds(plan(node=NodeBuilder(reclaimable=0)))


class TestOwnThreshold:
    def test_the_agent_asks_itself_for_the_shortfall_when_the_operator_is_silent(self) -> None:
        assert preparation.own_want(1 * GI, 3 * GI, None, 60.0, now=100.0) == 2 * GI
        assert preparation.own_want(1 * GI, 3 * GI, 10.0, 60.0, now=100.0) == 2 * GI

    def test_a_recent_operator_request_or_enough_headroom_means_no_own_want(self) -> None:
        assert preparation.own_want(1 * GI, 3 * GI, 90.0, 60.0, now=100.0) == 0
        assert preparation.own_want(4 * GI, 3 * GI, None, 60.0, now=100.0) == 0
        assert preparation.own_want(0, 0, None, 60.0, now=100.0) == 0
