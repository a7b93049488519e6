"""The lab's measurements: parsing what the guest recorded and summarising it.

Trace lines are verbatim from a lab run (Debian 6.1.0-56-cloud-amd64 under qemu TCG,
``trace_clock=mono``, the synthetic events set up by ``burstguard/lab/guest/init``).
"""

from __future__ import annotations

import pytest

from burstguard.lab import measuring

HOLD_AND_BLOCKED_MOUNT = """\
# tracer: nop
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
         kswapd0-43      [000] ...2.    84.700571: shrink_hold: lat_us=105718 prio=8 scanned=3675
         labload-401     [001] ...2.    84.717933: writer_prealloc_shrinker: lat_us=81414
         labload-386     [001] ...2.    84.711653: writer_unregister_shrinker: lat_us=31345
         kswapd0-43      [001] ...2.    89.090059: shrink_hold: lat_us=86558 prio=7 scanned=6954
"""


def container_line(i: int, *, mount_us: int, start_us: int = 200_000, ok: int = 1) -> str:
    begin = 1_000_000 + i * 1000
    return f"C {i} {begin} {begin} 500 {mount_us} {start_us} 3000 100 {ok}"


class TestPercentilesAreNearestRank:
    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            pytest.param(50, 5.0, id="median-of-ten-is-the-fifth"),
            pytest.param(99, 10.0, id="p99-of-ten-is-the-maximum"),
            pytest.param(99.9, 10.0, id="p99.9-of-ten-is-the-maximum"),
        ],
    )
    def test_percentile_of_one_to_ten(self, q: float, expected: float) -> None:
        assert measuring.percentile(list(range(1, 11)), q) == expected

    def test_an_empty_sample_summarises_to_zeros(self) -> None:
        d = measuring.distribution([])
        assert (d.n, d.max_ms, d.over_100ms) == (0, 0.0, 0)

    def test_counts_only_samples_strictly_over_the_thresholds(self) -> None:
        d = measuring.distribution([100_000, 100_001, 1_000_000, 1_000_001])
        assert (d.over_100ms, d.over_1s) == (3, 1)


class TestTraceEventsFromTheGuest:
    def test_parses_holds_with_priority_and_writers_with_their_wait(self) -> None:
        events = measuring.parse_trace(HOLD_AND_BLOCKED_MOUNT)
        assert [e.event for e in events] == [
            "shrink_hold",
            "writer_prealloc_shrinker",
            "writer_unregister_shrinker",
            "shrink_hold",
        ]
        hold = events[0]
        assert (hold.comm, hold.lat_us, hold.prio, hold.scanned) == ("kswapd0", 105718, 8, 3675)
        assert events[1].prio is None and events[1].lat_us == 81414

    def test_links_a_hold_to_the_writers_waiting_across_its_end(self) -> None:
        # c0 faults in its memory across both holds; c1's mount begins inside the first
        mounting = measuring.Container(
            1, 84_600_000, 84_600_000, 36_000, 81_000, 200_000, 0, 0, True
        )
        faulting = measuring.Container(0, 84_000_000, 84_000_000, 1000, 2000, 2_000_000, 0, 0, True)
        stalls = measuring._stalls(
            measuring.parse_trace(HOLD_AND_BLOCKED_MOUNT), [faulting, mounting]
        )
        longest = stalls[0]
        assert longest["hold_ms"] == pytest.approx(105.718)
        assert longest["writers_blocked"] == 2
        assert longest["longest_writer_wait_ms"] == pytest.approx(81.414)
        assert (longest["mounts_begun"], longest["starts_faulting"]) == (1, 1)
        assert stalls[1]["writers_blocked"] == 0
        assert (stalls[1]["mounts_begun"], stalls[1]["starts_faulting"]) == (0, 0)

    def test_sums_ring_buffer_overruns_over_cpus(self) -> None:
        stats = "entries: 20\noverrun: 0\nentries: 17\noverrun: 3\n"
        assert measuring.trace_overruns(stats) == 3


class TestVmstatDeltas:
    def test_allocstall_sums_the_per_zone_counters(self) -> None:
        before = {"pgscan_kswapd": 10, "allocstall_dma32": 1, "allocstall_normal": 2}
        after = {"pgscan_kswapd": 110, "allocstall_dma32": 4, "allocstall_normal": 2}
        delta = measuring.vmstat_delta(before, after)
        assert delta["pgscan_kswapd"] == 100
        assert delta["allocstall"] == 3


class TestOneRun:
    def test_measures_only_started_containers_and_the_trace_inside_the_burst(self) -> None:
        lines = [container_line(i, mount_us=10_000) for i in range(3)]
        lines.append(container_line(3, mount_us=250_000, ok=0))
        lines.append("B 1000000 91000000 4 1")
        files = {
            "containers.txt": "\n".join(lines).encode(),
            "trace.txt": (
                HOLD_AND_BLOCKED_MOUNT + "  kswapd0-43 [000] ...2. 95.0: "
                "shrink_hold: lat_us=999999 prio=0 scanned=1\n"
            ).encode(),
            "vmstat.before": b"pgscan_kswapd 5\n",
            "vmstat.after": b"pgscan_kswapd 50\n",
        }
        run = measuring.measure("unguarded", 0, files, 12.0)
        assert not run.ok and run.failed == 1
        assert run.mount.n == 3 and run.mount.max_ms == 10.0
        assert run.makespan_s == 90.0
        assert run.vmstat["pgscan_kswapd"] == 45
        assert run.holds.n == 2  # the hold at 95 s ended after the burst
        assert run.mount_lock_waits.max_ms == pytest.approx(81.414)

    def test_a_run_without_a_finished_burst_is_an_error(self) -> None:
        with pytest.raises(measuring.MeasureError):
            measuring.measure("x", 0, {"containers.txt": container_line(0, mount_us=1).encode()}, 0)
