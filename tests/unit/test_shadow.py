"""Shadow mode records what pacing would have done, with the same decisions."""

from __future__ import annotations

from burstguard.api import policy
from burstguard.core import pacing, shadow

RULES = policy.Pacing(
    max_starting_per_node=2, release_per_second=1.0, burst=1, max_gate_seconds=600
)


def queue(n: int) -> list[pacing.QueuedPod]:
    return [pacing.QueuedPod(key=f"ns/p{i}", created_at=0.0) for i in range(n)]


def test_the_shadow_releases_exactly_what_the_live_pacer_would() -> None:
    nodes = [pacing.NodeView(name="a", headroom_bytes=None, state="stale")]
    bucket = pacing.full_bucket(1.0, 1.0, 0.0)
    live = pacing.plan(queue(5), nodes, RULES, bucket=bucket, now=3.0)
    dry = shadow.step(queue(5), nodes, RULES, bucket=bucket, now=3.0)
    assert dry.plan == live
    assert [d.pod for d in dry.delays] == [p.key for p in live.release]
    assert dry.delays[0].seconds == 3.0


def test_overdue_pods_leave_the_virtual_queue_with_their_wait() -> None:
    nodes = [pacing.NodeView(name="a", state="closed")]
    dry = shadow.step(queue(2), nodes, RULES, bucket=pacing.full_bucket(1.0, 1.0, 0.0), now=700.0)
    assert [d.seconds for d in dry.delays] == [700.0, 700.0]


def test_the_summary_counts_delays_closures_and_keeps_recent_ones() -> None:
    s = shadow.record(
        shadow.WouldHave(),
        entered=3,
        delays=[shadow.Delay("ns/a", 4.0), shadow.Delay("ns/b", 0.05)],
        tick_s=0.1,
    )
    s = shadow.record(s, closures=[shadow.Closure("n1", 0.0, ("headroom-low",))])
    status = s.as_status()
    assert status["gatedPods"] == 3 and status["delayedPods"] == 1
    assert status["maxDelaySeconds"] == 4.0 and status["closedNodes"] == 1
    assert status["recentClosures"] == [
        {"node": "n1", "at": "1970-01-01T00:00:00Z", "reasons": ["headroom-low"]}
    ]
