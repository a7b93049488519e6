"""Intake steering: summaries to labels, with the state machine's hysteresis."""

from __future__ import annotations

import dataclasses

from burstguard.api import nodesummary, policy
from burstguard.core import intake, nodestate

GI = 2**30
SPEC = policy.PolicySpec(
    pacing=policy.Pacing(pod_startup_memory_bytes=GI // 4, max_starting_per_node=4),
    headroom=policy.HeadroomRules(reopen_hold_s=5.0, stale_after_s=30.0),
)


def summary(at: float, headroom_gib: float = 4.0, **kw: object) -> nodesummary.NodeSummary:
    return nodesummary.NodeSummary(
        sampled_at=at,
        state="Open",
        headroom_bytes=int(headroom_gib * GI),
        reclaimable_bytes=0,
        **kw,  # type: ignore[arg-type]
    )


def run(
    samples: list[tuple[float, nodesummary.NodeSummary | None]], starting: int = 0
) -> list[str]:
    machine = nodestate.Machine()
    labels = []
    for now, s in samples:
        v = intake.steer(machine, s, SPEC, starting=starting, now=now)
        machine = v.machine
        labels.append(v.label)
    return labels


def test_a_node_with_headroom_is_open() -> None:
    assert run([(0.0, summary(0.0))]) == ["open"]


def test_low_headroom_closes_at_once_and_reopens_only_after_the_hold() -> None:
    labels = run(
        [
            (0.0, summary(0.0)),
            (1.0, summary(1.0, 0.1)),
            (2.0, summary(2.0)),
            (4.0, summary(4.0)),
            (7.5, summary(7.5)),
        ]
    )
    assert labels == ["open", "closed", "closed", "closed", "open"]


def test_kswapd_scanning_closes_a_node_with_plenty_of_headroom() -> None:
    scanning = summary(0.0, rates=nodesummary.ReclaimRates(pgscan_kswapd=300.0))
    assert run([(0.0, scanning)]) == ["closed"]


def test_kswapd_dropping_credited_page_cache_on_a_fixed_kernel_leaves_the_node_open() -> None:
    kswapd = nodesummary.ReclaimRates(pgscan_kswapd=30_000.0)
    warm = summary(0.0, rates=kswapd, cache_credit_bytes=8 * GI)
    assert run([(0.0, warm)]) == ["open"]
    exposed = summary(0.0, rates=kswapd, cache_credit_bytes=8 * GI, shrinker_exposed=True)
    assert run([(0.0, exposed)]) == ["closed"]


def test_direct_reclaim_or_a_stall_closes_even_a_node_with_cache_credit() -> None:
    direct = nodesummary.ReclaimRates(pgscan_kswapd=30_000.0, pgscan_direct=500.0)
    stall = nodesummary.ReclaimRates(allocstall=1.0)
    for rates in (direct, stall):
        assert run([(0.0, summary(0.0, rates=rates, cache_credit_bytes=8 * GI))]) == ["closed"]


def test_lock_wait_counts_only_on_exposed_kernels() -> None:
    slow = dict(lock_wait_p99_s=0.5)
    assert run([(0.0, summary(0.0, shrinker_exposed=True, **slow))]) == ["closed"]
    assert run([(0.0, summary(0.0, shrinker_exposed=False, **slow))]) == ["open"]


def test_a_node_at_its_start_limit_is_closed_to_steer_the_scheduler_elsewhere() -> None:
    spec = dataclasses.replace(SPEC, pacing=dataclasses.replace(SPEC.pacing, pin_to_node=False))
    v = intake.steer(nodestate.Machine(), summary(0.0), spec, starting=4, now=0.0)
    assert v.label == "closed" and "start-limit" in v.reasons


def test_a_pinning_policy_leaves_a_node_at_its_start_limit_labelled_open() -> None:
    v = intake.steer(nodestate.Machine(), summary(0.0), SPEC, starting=4, now=0.0)
    assert v.label == "open" and "start-limit" in v.reasons and v.pacing_state == "open"


def test_a_node_without_a_fresh_summary_is_stale_and_stays_open() -> None:
    v = intake.steer(nodestate.Machine(), summary(0.0), SPEC, starting=0, now=100.0)
    assert v.pacing_state == "stale" and v.label == "open"
    v = intake.steer(nodestate.Machine(), None, SPEC, starting=0, now=100.0)
    assert v.pacing_state == "stale"


def test_the_reclaim_scan_rate_threshold_is_honoured() -> None:
    spec = dataclasses.replace(
        SPEC, headroom=dataclasses.replace(SPEC.headroom, reclaim_scan_rate=1000.0)
    )
    obs = intake.observation(
        summary(0.0, rates=nodesummary.ReclaimRates(pgscan_kswapd=300.0)), spec.headroom
    )
    assert obs is not None and not obs.reclaim_active
