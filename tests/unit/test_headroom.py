"""Headroom against the watermarks, reclaim rates and kernel exposure."""

from __future__ import annotations

import pathlib

import hypothesis
import pytest
from hypothesis import strategies as st

from burstguard.core import headroom, kernel, rates
from burstguard.procfs import buddyinfo, snapshot, vmstat
from tests.unit.builders import SnapshotBuilder, ZoneBuilder

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "proc"
PAGE = 4096


class TestHeadroom:
    def test_is_free_minus_high_summed_over_zones_minus_reserve(self) -> None:
        snap = SnapshotBuilder(
            zones=[
                ZoneBuilder("DMA32", free=20_000, high=1_000),
                ZoneBuilder("Normal", free=50_000, high=2_000),
            ]
        ).build()
        h = headroom.assess(snap, reserve_bytes=10 * PAGE)
        assert h.headroom_bytes == (19_000 + 48_000 - 10) * PAGE
        assert h.free_bytes == 70_000 * PAGE and h.high_bytes == 3_000 * PAGE

    def test_a_zone_under_its_watermark_takes_nothing_from_the_others(self) -> None:
        snap = SnapshotBuilder(
            zones=[
                ZoneBuilder("DMA32", free=500, high=1_000),
                ZoneBuilder("Normal", free=5_000, high=1_000),
            ]
        ).build()
        assert headroom.assess(snap).headroom_bytes == 4_000 * PAGE

    def test_lowmem_reserve_is_not_headroom(self) -> None:
        dma = ZoneBuilder(
            "DMA", free=3_840, high=16, managed=3_840, protection=(0, 3018, 24090, 24090, 24090)
        )
        snap = SnapshotBuilder(zones=[dma]).build()
        assert headroom.assess(snap).headroom_bytes == 0

    def test_empty_zones_are_ignored(self) -> None:
        snap = SnapshotBuilder(
            zones=[ZoneBuilder("Movable", free=0, high=32, managed=0), ZoneBuilder()]
        ).build()
        assert [z.zone for z in headroom.assess(snap).zones] == ["Normal"]

    def test_zones_below_low_are_named(self) -> None:
        snap = SnapshotBuilder(zones=[ZoneBuilder("Normal", free=1_000, low=1_250)]).build()
        assert headroom.assess(snap).below_low_zones == ("0/Normal",)

    def test_reclaimable_is_the_file_lru(self) -> None:
        snap = SnapshotBuilder(
            meminfo={"Inactive(file)": 300, "Active(file)": 200, "MemFree": 9}
        ).build()
        assert headroom.assess(snap).reclaimable_bytes == 500

    def test_fragmentation_is_the_share_of_free_pages_in_high_orders(self) -> None:
        # order 0: 8 pages, order 4: 1 block of 16 pages -> 16 / 24
        ratio = headroom.high_order_free_ratio((buddyinfo.BuddyZone(0, "Normal", (8, 0, 0, 0, 1)),))
        assert ratio == pytest.approx(16 / 24)
        assert headroom.high_order_free_ratio(()) is None

    def test_pressure_fixture_has_less_headroom_than_idle(self) -> None:
        idle = headroom.assess(snapshot.read(str(FIXTURES / "host-6.18-idle"), 0.0, PAGE))
        busy = headroom.assess(snapshot.read(str(FIXTURES / "host-6.18-pressure-b"), 0.0, PAGE))
        assert busy.headroom_bytes < 100 * 2**20 < idle.headroom_bytes


class TestReclaimRates:
    def test_rates_from_the_real_pressure_pair(self) -> None:
        a = vmstat.parse((FIXTURES / "host-6.18-pressure-a" / "vmstat").read_text())
        b = vmstat.parse((FIXTURES / "host-6.18-pressure-b" / "vmstat").read_text())
        r = rates.reclaim_rates(a, b, elapsed_s=1.0)
        assert r.pgscan_kswapd == b["pgscan_kswapd"] - a["pgscan_kswapd"] > 0
        assert r.pgscan_direct == b["pgscan_direct"] - a["pgscan_direct"]

    def test_allocstall_sums_every_zone(self) -> None:
        prev = {"allocstall_dma32": 1, "allocstall_normal": 10}
        cur = {"allocstall_dma32": 3, "allocstall_normal": 14}
        assert rates.reclaim_rates(prev, cur, 2.0).allocstall == 3.0

    def test_old_kernel_per_zone_pgscan_names_are_summed(self) -> None:
        prev = {"pgscan_kswapd_normal": 100, "pgscan_kswapd_dma32": 0}
        cur = {"pgscan_kswapd_normal": 150, "pgscan_kswapd_dma32": 50}
        assert rates.reclaim_rates(prev, cur, 1.0).pgscan_kswapd == 100.0

    def test_a_counter_reset_counts_the_new_value_not_a_negative_rate(self) -> None:
        assert (
            rates.reclaim_rates({"pgscan_kswapd": 1_000}, {"pgscan_kswapd": 40}, 1.0).pgscan_kswapd
            == 40.0
        )

    def test_missing_counters_read_as_zero_and_are_reported(self) -> None:
        r = rates.reclaim_rates({}, {"pgscan_kswapd": 5}, 1.0)
        assert r.pgscan_direct == 0.0 and r.pgscan_kswapd == 0.0
        assert "pgscan_direct" in rates.missing_counters({"pgscan_kswapd": 5})

    def test_no_elapsed_time_gives_zero_rates(self) -> None:
        assert (
            rates.reclaim_rates({"pgscan_kswapd": 1}, {"pgscan_kswapd": 9}, 0.0).pgscan_kswapd
            == 0.0
        )


class TestShrinkerExposure:
    @pytest.mark.parametrize(
        ("release", "exposed"),
        [
            pytest.param("5.4.251-generic", True, id="incident-5.4"),
            pytest.param("6.1.0-56-cloud-amd64", True, id="debian-6.1"),
            pytest.param("6.6.30", True, id="6.6-still-exposed"),
            pytest.param("6.7.0", False, id="6.7-fixed"),
            pytest.param("6.18.44-fc-v782", False, id="6.18"),
            pytest.param("weird", None, id="unparseable"),
        ],
    )
    def test_release_alone_decides_without_symbols(
        self, release: str, exposed: bool | None
    ) -> None:
        assert kernel.shrinker_exposure(release).exposed is exposed

    def test_a_backported_lockless_shrinker_is_not_exposed(self) -> None:
        verdict = kernel.shrinker_exposure("5.15.0-vendor", frozenset({"shrinker_alloc"}))
        assert verdict.exposed is False and "shrinker_alloc" in verdict.reason

    def test_the_rwsem_symbol_means_exposed(self) -> None:
        assert kernel.shrinker_exposure("6.1.0", frozenset({"shrinker_rwsem"})).exposed is True

    def test_no_evidence_symbols_falls_back_to_the_release(self) -> None:
        assert kernel.shrinker_exposure("6.1.0", frozenset()).exposed is True


def test_the_guest_pressure_pair_shows_kswapd_alone_reclaiming() -> None:
    a = vmstat.parse((FIXTURES / "guest-6.1.0-56-pressure-a" / "vmstat").read_text())
    b = vmstat.parse((FIXTURES / "guest-6.1.0-56-pressure-b" / "vmstat").read_text())
    r = rates.reclaim_rates(a, b, elapsed_s=1.0)
    assert r.pgscan_kswapd > 0 and r.pgscan_direct == 0
    room = headroom.assess(snapshot.read(str(FIXTURES / "guest-6.1.0-56-pressure-b"), 0.0, PAGE))
    assert room.headroom_bytes == 0  # every zone at or under its high watermark


WARM = {"Inactive(file)": 8 * 2**30, "Active(file)": 4 * 2**30, "Dirty": 2**30, "Writeback": 0}


class TestCacheCredit:
    def test_a_fixed_kernel_counts_half_the_clean_inactive_cache_by_default(self) -> None:
        snap = SnapshotBuilder(
            zones=[ZoneBuilder("Normal", free=2_000, high=1_000)], meminfo=WARM
        ).build()
        room = headroom.assess(
            snap,
            cache_credit_ratio=headroom.DEFAULT_CACHE_CREDIT_RATIO,
            shrinker_exposed=False,
        )
        assert room.cache_credit_bytes == (7 * 2**30) // 2
        assert room.headroom_bytes == 1_000 * PAGE + (7 * 2**30) // 2

    @pytest.mark.parametrize(
        "exposed", [pytest.param(True, id="exposed"), pytest.param(None, id="unknown")]
    )
    def test_an_exposed_or_unknown_kernel_counts_no_cache(self, exposed: bool | None) -> None:
        snap = SnapshotBuilder(
            zones=[ZoneBuilder("Normal", free=2_000, high=1_000)], meminfo=WARM
        ).build()
        room = headroom.assess(snap, cache_credit_ratio=1.0, shrinker_exposed=exposed)
        assert room.cache_credit_bytes == 0 and room.headroom_bytes == 1_000 * PAGE

    @hypothesis.given(
        inactive=st.integers(0, 2**40),
        dirty=st.integers(0, 2**40),
        writeback=st.integers(0, 2**36),
        ratio=st.floats(0.0, 1.0),
        more=st.integers(0, 2**36),
        exposed=st.sampled_from([True, False, None]),
    )
    def test_the_credit_is_bounded_by_clean_inactive_cache_and_grows_with_it(  # noqa: PLR0917
        self,
        inactive: int,
        dirty: int,
        writeback: int,
        ratio: float,
        more: int,
        exposed: bool | None,
    ) -> None:
        info = {"Inactive(file)": inactive, "Dirty": dirty, "Writeback": writeback}
        credit = headroom.cache_credit(info, ratio, exposed)
        clean = max(0, inactive - dirty - writeback)
        assert 0 <= credit <= clean
        assert exposed is False or credit == 0
        bigger = headroom.cache_credit({**info, "Inactive(file)": inactive + more}, ratio, exposed)
        assert bigger >= credit
        snap = SnapshotBuilder(meminfo=info).build()
        room = headroom.assess(snap, cache_credit_ratio=ratio, shrinker_exposed=exposed)
        assert room.headroom_bytes == room.watermark_headroom_bytes + credit
