"""The simulated node-memory model: calibration against the host/lab measurements and mechanics.

The calibration tests replay the host's burst (reference/host-6.18-bursts.md: 32 "containers"
of 192 MiB on a 2-vCPU 24 GiB node, fork+memset so no runtime overhead) and check the model
lands inside the measured ranges.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest

from burstguard.api import nodesummary
from burstguard.simulation import nodemodel

MIB = 2**20
GIB = 2**30


@dataclass
class Burst:
    """A burst replayed against one model node; ``run()`` returns what happened.

    ``dt`` is both the model's integration step and the harness's cadence; the harness
    releases the next start the moment a slot frees (``until_started``), as a runtime does.
    """

    free_mib: int = 14000
    count: int = 32
    demand_mib: int = 192
    concurrency: int | None = None
    params: nodemodel.Params = field(
        default_factory=lambda: nodemodel.Params(
            memory_bytes=24 * GIB, cores=2, start_overhead_core_s=0.0, image_cache_bytes=0
        )
    )
    seed: int = 1
    dt: float = 0.01

    def run(self) -> BurstResult:
        state = nodemodel.initial(self.params, 0.0, self.free_mib * MIB, 15 * GIB)
        rng = random.Random(self.seed)
        pending = [f"ns/p{i}" for i in range(self.count)]
        durations: list[float] = []
        while pending or state.starts:
            while pending and (self.concurrency is None or state.starting < self.concurrency):
                state = nodemodel.start(
                    state, self.params, pending.pop(0), self.demand_mib * MIB, now=state.at
                )
            state, done = nodemodel.advance(
                state, self.params, state.at + self.dt, rng, step_s=self.dt, until_started=True
            )
            durations += [d.duration_s for d in done]
            assert state.at < 600, "burst never finished"
        return BurstResult(state, state.at, max(durations), state.counters.first_kswapd_wake_at)


@dataclass
class BurstResult:
    state: nodemodel.State
    makespan_s: float
    start_max_s: float
    first_wake_s: float | None


CALIBRATION_BURSTS = [
    pytest.param(Burst(free_mib=14000), id="S1-no-pressure"),
    pytest.param(Burst(free_mib=188), id="S2_r5-188MiB-free"),
    pytest.param(Burst(free_mib=563), id="S2_r3-563MiB-free"),
    pytest.param(Burst(free_mib=1036), id="S2_r1-1036MiB-free"),
    pytest.param(Burst(free_mib=300, concurrency=2), id="S3b-paced-2"),
    pytest.param(Burst(free_mib=300, concurrency=4), id="S3b-paced-4"),
    pytest.param(
        Burst(free_mib=744, params=replace(Burst().params, watermark_scale_factor=500)),
        id="S3c-wsf500",
    ),
    # Not a host burst: 4 cores fault faster than kswapd reclaims, so direct reclaim runs.
    pytest.param(
        Burst(free_mib=188, params=replace(Burst().params, cores=4)), id="4-cores-direct-reclaim"
    ),
]
"""The host's bursts (reference/host-6.18-bursts.md), replayed against the model."""


def agree(a: float, b: float, *, floor: float) -> bool:
    """Within 10 % of each other; counts below ``floor`` (noise on a node) count as equal."""
    return abs(a - b) <= max(0.1 * max(abs(a), abs(b)), floor)


# -- the integration step ------------------------------------------------------------------------


@pytest.mark.parametrize("burst", CALIBRATION_BURSTS)
def test_a_burst_gives_the_same_reclaim_and_makespan_at_a_step_of_10_and_50_ms(
    burst: Burst,
) -> None:
    fine = replace(burst, dt=0.01).run()
    coarse = replace(burst, dt=0.05).run()
    a, b = fine.state.counters, coarse.state.counters
    assert agree(a.pgscan_kswapd, b.pgscan_kswapd, floor=2560), (a, b)  # 10 MiB
    assert agree(a.pgscan_direct, b.pgscan_direct, floor=2560), (a, b)
    assert agree(a.allocstall, b.allocstall, floor=5), (a, b)
    assert agree(fine.makespan_s, coarse.makespan_s, floor=0.0), (fine, coarse)


@pytest.mark.parametrize("burst", CALIBRATION_BURSTS)
@pytest.mark.parametrize("dt", [0.01, 0.05])
def test_kswapd_wakes_before_any_direct_reclaim(burst: Burst, dt: float) -> None:
    counters = replace(burst, dt=dt).run().state.counters
    if counters.first_direct_reclaim_at is not None:
        assert counters.first_kswapd_wake_at is not None
        assert counters.first_kswapd_wake_at <= counters.first_direct_reclaim_at


# -- calibration ---------------------------------------------------------------------------------


def test_watermarks_match_the_ones_measured_on_the_24_gib_host() -> None:
    marks = nodemodel.Params(memory_bytes=24 * GIB, cores=2).marks
    assert marks.min_bytes == 66 * MIB
    assert abs(marks.low_bytes - 90 * MIB) < 2 * MIB
    assert abs(marks.high_bytes - 114 * MIB) < 2 * MIB


def test_an_unpressured_burst_takes_the_host_makespan_and_never_wakes_kswapd() -> None:
    result = Burst(free_mib=14000).run()
    assert 3.0 <= result.makespan_s <= 5.0
    assert result.state.counters.kswapd_wakes == 0


@pytest.mark.parametrize(
    "free_mib", [pytest.param(188, id="S2_r5"), pytest.param(563, id="S2_r3"), 1036]
)
def test_a_burst_onto_a_primed_node_wakes_kswapd_as_early_as_measured(free_mib: int) -> None:
    result = Burst(free_mib=free_mib).run()
    assert result.first_wake_s is not None
    assert result.first_wake_s <= 0.81 + 0.05
    # Host S2: pgscan_kswapd 1.27-2.04 M pages per burst.
    assert 1_200_000 <= result.state.counters.pgscan_kswapd <= 2_100_000
    assert 2.5 <= result.makespan_s <= 5.0


def test_two_starts_at_a_time_start_as_fast_as_the_host_paced_run() -> None:
    paced = Burst(free_mib=300, concurrency=2).run()
    unpaced = Burst(free_mib=300).run()
    assert 0.2 <= paced.start_max_s <= 0.4  # host S3b: 0.24-1.1 s, typical 0.2-0.36 s
    assert unpaced.start_max_s > 5 * paced.start_max_s  # host: 3-10x


def test_a_larger_watermark_scale_factor_wakes_kswapd_before_the_burst_lands() -> None:
    params = replace(Burst().params, watermark_scale_factor=500)
    result = Burst(free_mib=744, params=params).run()
    assert abs(params.marks.high_bytes - 2.48e9) < 0.2e9  # host: Σhigh about 2.48 GB
    assert result.first_wake_s is not None and result.first_wake_s <= 0.05


def test_kswapd_reclaim_costs_a_pressured_burst_time() -> None:
    calm = Burst(free_mib=14000).run()
    pressured = Burst(free_mib=188).run()
    assert pressured.makespan_s > calm.makespan_s * 1.03


def test_direct_reclaim_slows_starts_more_the_deeper_the_shortfall() -> None:
    four = replace(Burst().params, cores=4)
    calm = Burst(free_mib=14000, params=four).run()
    short = Burst(free_mib=188, params=four).run()
    assert short.state.counters.allocstall > 0
    assert short.state.counters.direct_reclaim_s > 0
    assert short.makespan_s > 1.3 * calm.makespan_s
    eight = replace(Burst().params, cores=8)
    shorter = Burst(free_mib=188, params=eight).run().state.counters
    assert shorter.direct_reclaim_s > short.state.counters.direct_reclaim_s


# -- mechanics -----------------------------------------------------------------------------------


def node(**overrides: object) -> tuple[nodemodel.Params, nodemodel.State]:
    params = replace(nodemodel.Params(memory_bytes=8 * GIB, cores=2), **overrides)  # type: ignore[arg-type]
    return params, nodemodel.initial(params, 0.0, params.marks.high_bytes + GIB, 4 * GIB)


def run_until_idle(
    params: nodemodel.Params, state: nodemodel.State, rng: random.Random
) -> nodemodel.State:
    now = state.at
    while state.starts or state.kswapd_awake:
        now += 0.1
        state, _ = nodemodel.advance(state, params, now, rng)
        assert now - state.at < 1 and now < 300, "node never settled"
    return state


def test_memory_is_conserved_through_starts_reclaim_and_stops() -> None:
    params, state = node()
    rng = random.Random(3)
    for i in range(12):
        state = nodemodel.start(state, params, f"ns/p{i}", 256 * MIB, now=0.0, image="busybox")
    state = run_until_idle(params, state, rng)
    assert state.free_bytes + state.cache_bytes + state.anon_bytes == params.memory_bytes
    for i in range(12):
        state = nodemodel.stop(state, f"ns/p{i}")
    assert state.free_bytes + state.cache_bytes + state.anon_bytes == params.memory_bytes
    assert state.running == ()


def test_stopping_a_running_pod_gives_its_memory_back_to_free() -> None:
    params, state = node()
    state = nodemodel.start(state, params, "ns/a", 512 * MIB, now=0.0)
    state = run_until_idle(params, state, random.Random(0))
    before = state.free_bytes
    assert nodemodel.stop(state, "ns/a").free_bytes == before + 512 * MIB


def test_the_first_start_of_an_image_fills_page_cache_once_per_node() -> None:
    params, state = node()
    one = nodemodel.start(state, params, "ns/a", MIB, now=0.0, image="app:1")
    two = nodemodel.start(one, params, "ns/b", MIB, now=0.0, image="app:1")
    assert one.cache_bytes - state.cache_bytes == params.image_cache_bytes
    assert two.cache_bytes == one.cache_bytes


def test_a_burst_beyond_headroom_wakes_kswapd_which_sleeps_again_above_high() -> None:
    params, state = node()
    for i in range(8):
        state = nodemodel.start(state, params, f"ns/p{i}", 256 * MIB, now=0.0)
    state = run_until_idle(params, state, random.Random(0))
    assert state.counters.kswapd_wakes >= 1
    assert not state.kswapd_awake
    assert state.free_bytes >= params.marks.high_bytes


def test_a_fixed_kernel_never_stalls_a_mount() -> None:
    params, state = node(stall_probability=1.0, shrinker_exposed=False)
    for i in range(20):
        state = nodemodel.start(state, params, f"ns/p{i}", 128 * MIB, now=0.0)
    assert run_until_idle(params, state, random.Random(0)).counters.stalls == 0


def test_an_exposed_kernel_stalls_mounts_only_while_kswapd_is_awake() -> None:
    params, state = node(stall_probability=1.0, shrinker_exposed=True)
    # Within headroom: kswapd stays asleep, so no mount may stall.
    calm = nodemodel.start(state, params, "ns/calm", 64 * MIB, now=0.0)
    calm = run_until_idle(params, calm, random.Random(0))
    assert calm.counters.kswapd_wakes == 0 and calm.counters.stalls == 0
    # kswapd awake before the mounts: every one stalls.
    awake = replace(state, kswapd_awake=True, free_bytes=params.marks.low_bytes - MIB)
    for i in range(5):
        awake = nodemodel.start(awake, params, f"ns/p{i}", 16 * MIB, now=0.0)
    awake, _ = nodemodel.advance(awake, params, 0.05, random.Random(0))
    assert awake.counters.stalls == 5
    assert params.stall_min_s <= awake.counters.max_stall_s <= params.stall_max_s


def test_a_stalled_start_takes_at_least_its_stall_longer() -> None:
    params, state = node(stall_probability=1.0, shrinker_exposed=True)
    state = replace(state, kswapd_awake=True, free_bytes=params.marks.low_bytes - MIB)
    state = nodemodel.start(state, params, "ns/p", 16 * MIB, now=0.0)
    now = 0.0
    finished: tuple[nodemodel.Started, ...] = ()
    rng = random.Random(5)
    while not finished:
        now += 0.05
        state, finished = nodemodel.advance(state, params, now, rng)
    assert finished[0].duration_s >= finished[0].stalled_s >= params.stall_min_s


def test_preparation_frees_page_cache_without_kswapd_scanning() -> None:
    params, state = node()
    state = nodemodel.prepare(state, 2 * GIB)
    state, _ = nodemodel.advance(state, params, 1.0, random.Random(0))
    assert nodemodel.headroom_bytes(state, params) >= 3 * GIB
    assert state.counters.pgscan_kswapd == 0
    assert state.prepare_left_bytes == 0


def test_the_same_seed_gives_the_same_outcome() -> None:
    def outcome(seed: int) -> nodemodel.Counters:
        params, state = node(shrinker_exposed=True, stall_probability=0.3)
        for i in range(30):
            state = nodemodel.start(state, params, f"ns/p{i}", 96 * MIB, now=0.0)
        return run_until_idle(params, state, random.Random(seed)).counters

    assert outcome(7) == outcome(7)


def test_a_quiet_node_jumps_to_now_without_changing() -> None:
    params, state = node()
    later, done = nodemodel.advance(state, params, 3600.0, random.Random(0))
    assert later.at == 3600.0 and done == ()
    assert later.free_bytes == state.free_bytes


# -- the published summary -----------------------------------------------------------------------


def test_the_summary_is_flagged_simulated_and_survives_the_annotation_codec() -> None:
    params, state = node(shrinker_exposed=True, kernel_release="6.1.0-sim")
    summary = nodemodel.summarize(state, params, nodemodel.Counters(), elapsed_s=1.0, now=10.0)
    decoded = nodesummary.decode(nodesummary.encode(summary))
    assert decoded.simulated and decoded.signal_source == "simulation"
    assert decoded.shrinker_exposed and decoded.kernel_release == "6.1.0-sim"
    assert decoded.state == "Open"
    assert decoded.headroom_bytes == GIB


def test_the_summary_closes_a_node_while_kswapd_scans() -> None:
    params, state = node()
    before = state.counters
    for i in range(8):
        state = nodemodel.start(state, params, f"ns/p{i}", 512 * MIB, now=0.0)
    state, _ = nodemodel.advance(state, params, 1.5, random.Random(0))
    summary = nodemodel.summarize(state, params, before, elapsed_s=1.5, now=1.5)
    assert summary.state == "Closed"
    assert "kswapd-scanning" in summary.reasons
    assert summary.rates.pgscan_kswapd > 0


def test_a_fleet_draws_the_requested_share_of_exposed_kernels() -> None:
    nodes = nodemodel.fleet(20, nodemodel.FleetProfile(), random.Random(1), now=0.0)
    exposed = [n for n, (p, _) in nodes.items() if p.shrinker_exposed]
    assert len(nodes) == 20 and len(exposed) == 10
    for params, state in nodes.values():
        assert nodemodel.headroom_bytes(state, params) >= 256 * MIB


def test_the_summary_reports_the_windows_worst_stall_not_the_lifetime_maximum() -> None:
    params, state = node(stall_probability=1.0, shrinker_exposed=True)
    state = replace(state, kswapd_awake=True, free_bytes=params.marks.low_bytes - MIB)
    state = nodemodel.start(state, params, "ns/p", 16 * MIB, now=0.0)
    state, _ = nodemodel.advance(state, params, 0.05, random.Random(0))
    first = state.counters
    assert first.stalls == 1
    summary = nodemodel.summarize(state, params, nodemodel.Counters(), elapsed_s=1.0, now=1.0)
    assert summary.mount_p99_s == first.max_stall_s
    quiet = nodemodel.summarize(state, params, first, elapsed_s=1.0, now=2.0)
    assert quiet.mount_p99_s == 0.0 and "mount-stall" not in quiet.reasons
