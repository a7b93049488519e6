"""Decoding bpftrace JSON output, on captures from real runs (tests/fixtures/bpf)."""

from __future__ import annotations

import json
import pathlib

import pytest

from burstguard.bpf import decoding

CAPTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "bpf"


def hist_line(name: str, buckets: list[tuple[int, int, int]], key: str | None = None) -> str:
    raw = [{"min": lo, "max": hi, "count": c} for lo, hi, c in buckets]
    value: object = raw if key is None else {key: raw}
    return json.dumps({"type": "hist", "data": {f"@{name}": value}})


MARKER = json.dumps({"type": "printf", "data": "burstguard:window\n"})


def capture(name: str) -> list[str]:
    return (CAPTURES / f"{name}-6.18.jsonl").read_text().splitlines()


class TestRealCaptures:
    def test_every_line_of_the_captures_decodes(self) -> None:
        for name in ("mount_latency", "reclaim", "shrinker_lock_6_7"):
            windows, decoder = decoding.decode_lines(capture(name))
            assert decoder.undecodable_lines == 0
            assert decoder.attached_probes in (10, 14)
            assert len(windows) == 24

    def test_overlay_mounts_are_keyed_by_fs_type_and_umounts_by_syscall(self) -> None:
        windows, _ = decoding.decode_lines(capture("mount_latency"))
        busy = max(
            windows,
            key=lambda w: (
                decoding.total(w.maps["mount_ns"].histograms["overlay"])
                if "mount_ns" in w.maps
                else 0
            ),
        )
        assert set(busy.maps["mount_ns"].histograms) == {"overlay"}
        assert set(busy.maps["mount_api_ns"].histograms) == {"umount"}
        assert decoding.total(busy.maps["mount_ns"].histograms["overlay"]) == 194

    def test_reclaim_capture_has_direct_reclaim_and_kswapd_counts(self) -> None:
        windows, _ = decoding.decode_lines(capture("reclaim"))
        wakes = sum(w.maps["kswapd_wakes"].numbers[""] for w in windows if "kswapd_wakes" in w.maps)
        reclaimed = sum(
            w.maps["direct_reclaimed_pages"].numbers[""]
            for w in windows
            if "direct_reclaimed_pages" in w.maps
        )
        assert wakes == 218
        assert reclaimed == 62911
        stalls = [
            w.maps["direct_reclaim_ns"].histograms[""]
            for w in windows
            if "direct_reclaim_ns" in w.maps
        ]
        assert decoding.total(decoding.merge(stalls)) == 35


class TestWindows:
    def test_a_window_closes_only_at_the_marker(self) -> None:
        decoder = decoding.Decoder()
        assert decoder.feed(hist_line("mount_ns", [(1024, 2047, 3)], key="overlay")) is None
        window = decoder.feed(MARKER)
        assert window is not None
        assert window.maps["mount_ns"].histograms["overlay"] == (decoding.Bucket(1024, 2047, 3),)

    def test_a_map_absent_from_a_window_is_not_carried_over(self) -> None:
        decoder = decoding.Decoder()
        decoder.feed(hist_line("mount_ns", [(1024, 2047, 3)]))
        decoder.feed(MARKER)
        window = decoder.feed(MARKER)
        assert window is not None and window.maps == {}

    def test_empty_buckets_are_dropped_and_other_printf_lines_kept(self) -> None:
        decoder = decoding.Decoder()
        decoder.feed(hist_line("x", [(1, 1, 0), (2, 3, 4)]))
        decoder.feed(json.dumps({"type": "printf", "data": "hello\n"}))
        window = decoder.feed(MARKER)
        assert window is not None
        assert window.maps["x"].histograms[""] == (decoding.Bucket(2, 3, 4),)
        assert window.messages == ("hello",)

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param("not json", id="text"),
            pytest.param('{"type": "hist", "data": {"@x": [{"min": "a"}]}}', id="bad-bucket"),
            pytest.param('{"type": "hist", "data": {"@x": [{"min": 0, "max": 1', id="truncated"),
            pytest.param("[1, 2]", id="not-an-object"),
        ],
    )
    def test_garbage_lines_are_counted_not_fatal(self, line: str) -> None:
        decoder = decoding.Decoder()
        assert decoder.feed(line) is None
        assert decoder.undecodable_lines == 1

    def test_lost_events_are_reported_with_the_window(self) -> None:
        decoder = decoding.Decoder()
        decoder.feed(json.dumps({"type": "lost_events", "data": {"events": 7}}))
        window = decoder.feed(MARKER)
        assert window is not None and window.lost_events == 7


class TestLabels:
    @pytest.mark.parametrize(
        ("key", "label"),
        [
            pytest.param("tracepoint:syscalls:sys_exit_fsconfig", "fsconfig", id="syscall"),
            pytest.param("kretprobe:prealloc_shrinker", "prealloc_shrinker", id="kretprobe"),
            pytest.param("overlay", "overlay", id="plain"),
        ],
    )
    def test_probe_keys_become_short_label_values(self, key: str, label: str) -> None:
        assert decoding.label_value(key) == label


class TestQuantile:
    def test_p99_interpolates_inside_the_bucket_that_holds_the_rank(self) -> None:
        hist = (decoding.Bucket(1024, 2047, 99), decoding.Bucket(2048, 4095, 1))
        assert decoding.quantile(hist, 0.99) == pytest.approx(2048.0)
        assert decoding.quantile(hist, 1.0) == pytest.approx(4096.0)

    def test_a_single_slow_call_among_many_does_not_move_p99_out_of_the_main_bucket(self) -> None:
        hist = (decoding.Bucket(1024, 2047, 999), decoding.Bucket(2**30, 2**31 - 1, 1))
        p99 = decoding.quantile(hist, 0.99)
        assert p99 is not None and 1024 <= p99 < 2048

    def test_an_empty_histogram_has_no_quantile(self) -> None:
        assert decoding.quantile((), 0.99) is None

    def test_merge_sums_matching_buckets(self) -> None:
        a = (decoding.Bucket(2, 3, 1),)
        b = (decoding.Bucket(2, 3, 2), decoding.Bucket(4, 7, 1))
        assert decoding.merge((a, b)) == (decoding.Bucket(2, 3, 3), decoding.Bucket(4, 7, 1))
