"""Recommendations mined from node history: what is detected, what is proposed, and the output."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from burstguard.api import policy as policy_api
from burstguard.core import recommending

MIB = 2**20
GIB = 2**30


@dataclass
class HistoryBuilder:
    """A node's history, built a second at a time."""

    node: str = "n1"
    exposed: bool | None = False
    cores: float | None = 4.0
    memory_bytes: int | None = 16 * GIB
    samples: list[recommending.Sample] = field(default_factory=list)
    t: float = 1000.0
    starts: float = 0.0

    def idle(self, seconds: int, headroom: float = 2 * GIB) -> HistoryBuilder:
        for _ in range(seconds):
            self.samples.append(recommending.Sample(self.t, headroom, 0.0, 0.0, 0.0, self.starts))
            self.t += 1
        return self

    def burst(
        self,
        pods: int,
        cost: float = 256 * MIB,
        before: float = 2 * GIB,
        scan: float = 50_000.0,
        allocstall: float = 0.0,
    ) -> HistoryBuilder:
        """``pods`` start over 4 s, eating ``pods × cost`` of headroom; kswapd scans below 0."""
        for step in range(1, 5):
            headroom = before - pods * cost * step / 4
            reclaiming = headroom < 0
            self.starts += pods / 4
            self.samples.append(
                recommending.Sample(
                    self.t,
                    headroom,
                    scan if reclaiming else 0.0,
                    allocstall if reclaiming else 0.0,
                    float(pods),
                    self.starts,
                )
            )
            self.t += 1
        return self.idle(5, before)

    def build(self) -> recommending.NodeHistory:
        return recommending.NodeHistory(
            node=self.node,
            samples=tuple(self.samples),
            kernel_release="6.1.0" if self.exposed else "6.18.0",
            shrinker_exposed=self.exposed,
            cores=self.cores,
            memory_bytes=self.memory_bytes,
        )


def value_of(report: recommending.Report, name: str, nodes: bool = False) -> object:
    found = [r for r in report.recommendations if r.field == name and bool(r.nodes) == nodes]
    assert found, f"no recommendation for {name}"
    return found[0].value


# -- mining --------------------------------------------------------------------------------------


def test_a_headroom_drop_is_a_burst_sized_by_the_drop_with_its_pods() -> None:
    history = HistoryBuilder().idle(5).burst(pods=6).build()
    (burst,) = recommending.bursts(history)
    assert burst.demand_bytes == pytest.approx(6 * 256 * MIB)
    assert burst.pods == 6 and burst.peak_starting == 6
    assert burst.headroom_before_bytes == 2 * GIB


def test_a_bursts_demand_includes_what_kswapd_reclaimed_meanwhile() -> None:
    history = HistoryBuilder().idle(5).burst(pods=12, scan=1000.0).build()
    (burst,) = recommending.bursts(history)
    reclaimed = 1000.0 * recommending.PAGE_SIZE * 2  # two 1 s intervals below zero
    assert burst.demand_bytes == pytest.approx(12 * 256 * MIB + reclaimed)


def test_small_wobbles_are_not_bursts() -> None:
    history = HistoryBuilder().idle(5).idle(5, headroom=2 * GIB - 64 * MIB).build()
    assert recommending.bursts(history) == ()


def test_a_reclaim_episode_records_the_pods_starting_when_kswapd_woke() -> None:
    history = HistoryBuilder().idle(3).burst(pods=16, allocstall=5.0).build()
    (episode,) = recommending.episodes(history)
    assert episode.starting_at_wake == 16
    assert episode.pages_scanned > 0
    assert episode.allocstalls > 0


# -- proposing -----------------------------------------------------------------------------------


def test_the_pod_cost_is_the_memory_taken_per_start() -> None:
    history = HistoryBuilder().idle(3).burst(pods=3, cost=512 * MIB).build()
    report = recommending.recommend([history])
    assert value_of(report, "spec.pacing.podStartupMemory") == "512Mi"


def test_without_core_counts_the_start_limit_is_what_the_typical_headroom_fits() -> None:
    history = HistoryBuilder(cores=None).idle(3).burst(pods=3, cost=512 * MIB).build()
    report = recommending.recommend([history])
    assert value_of(report, "spec.pacing.maxStartingPerNode") == 4  # 2 GiB / 512 MiB


def test_the_start_limit_never_exceeds_one_start_per_core() -> None:
    history = HistoryBuilder(cores=2).idle(3).burst(pods=16, cost=64 * MIB).build()
    assert value_of(recommending.recommend([history]), "spec.pacing.maxStartingPerNode") == 2


def test_without_bursts_every_value_says_it_is_a_default() -> None:
    report = recommending.recommend([HistoryBuilder(cores=None).idle(30).build()])
    memory = next(r for r in report.recommendations if r.field == "spec.pacing.podStartupMemory")
    assert "default" in memory.evidence
    assert (
        value_of(report, "spec.pacing.maxStartingPerNode")
        == policy_api.DEFAULT_MAX_STARTING_PER_NODE
    )


def test_watermark_scale_factor_is_raised_only_on_unexposed_nodes_with_direct_reclaim() -> None:
    fixed = HistoryBuilder(node="fixed", exposed=False).idle(3).burst(16, allocstall=5).build()
    old = HistoryBuilder(node="old", exposed=True).idle(3).burst(16, allocstall=5).build()
    report = recommending.recommend([fixed, old])
    raised = [
        r for r in report.recommendations if r.field == "vm.watermark_scale_factor" and r.nodes
    ]
    by_nodes = {r.nodes: r for r in raised}
    assert int(by_nodes[("fixed",)].value) > recommending.WSF_DEFAULT
    assert by_nodes[("old",)].value == recommending.WSF_DEFAULT
    assert "longer" in by_nodes[("old",)].evidence


def test_no_direct_reclaim_means_keep_the_default_watermarks() -> None:
    history = HistoryBuilder(exposed=False).idle(3).burst(16).build()
    report = recommending.recommend([history])
    assert value_of(report, "vm.watermark_scale_factor") == recommending.WSF_DEFAULT


def test_the_exposure_report_lists_exposed_nodes_first() -> None:
    histories = [
        HistoryBuilder(node="a", exposed=False).idle(3).build(),
        HistoryBuilder(node="b", exposed=True).idle(3).burst(12).build(),
    ]
    rows = recommending.recommend(histories).exposure
    assert [r.node for r in rows] == ["b", "a"]
    assert rows[0].exposed and rows[0].episodes == 1


# -- output --------------------------------------------------------------------------------------


def test_the_recommended_policy_is_a_valid_dry_run_burst_policy() -> None:
    histories = [
        HistoryBuilder(node=f"n{i}", exposed=i % 2 == 0).idle(3).burst(10, allocstall=1).build()
        for i in range(4)
    ]
    obj = recommending.policy_object(recommending.recommend(histories), name="rec")
    parsed = policy_api.parse(obj)
    assert parsed.errors == ()
    assert parsed.spec.mode == policy_api.MODE_DRY_RUN
    assert parsed.spec.pacing.max_starting_per_node >= 1
    assert obj["kind"] == "BurstPolicy" and obj["metadata"]["name"] == "rec"


def test_a_timeline_survives_its_file_format() -> None:
    history = HistoryBuilder(exposed=None).idle(2).burst(4).build()
    (back,) = recommending.decode_timeline(recommending.encode_timeline([history], "test"))
    assert back == history


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('{"v": 2, "nodes": []}', id="wrong-version"),
        pytest.param('{"v": 1, "nodes": [{"samples": []}]}', id="no-node-name"),
        pytest.param('{"v": 1, "nodes": [{"node": "a", "samples": [["x"]]}]}', id="bad-sample"),
    ],
)
def test_a_malformed_timeline_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(recommending.TimelineError):
        recommending.decode_timeline(text)
