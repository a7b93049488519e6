"""Demand forecasts from CronJobs, suspended Jobs and Kueue Workloads (core.forecasting)."""

from __future__ import annotations

import datetime
import math
import zoneinfo
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burstguard.core import forecasting

GI = 2**30
T0 = datetime.datetime(2026, 12, 6, 0, 3, 20, tzinfo=datetime.UTC).timestamp()
"""A fixed "now": 2026-12-06 00:03:20 UTC."""


def cron(schedule: str = "*/5 * * * *", **kw: object) -> forecasting.CronSource:
    """A CronJob source of 4 pods of 1 GiB each."""
    base = forecasting.CronSource(
        key="batch/nightly",
        schedule=schedule,
        time_zone=None,
        pods=4,
        shape=forecasting.PodShape(GI),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def utc(hour: int, minute: int, day: int = 6) -> float:
    return datetime.datetime(2026, 12, day, hour, minute, tzinfo=datetime.UTC).timestamp()


class TestCronJobs:
    def test_a_five_minute_schedule_lands_at_each_five_minute_mark_within_the_horizon(
        self,
    ) -> None:
        bursts = forecasting.cron_bursts(cron(), T0, 900, GI)
        assert [b.at for b in bursts] == [utc(0, 5), utc(0, 10), utc(0, 15)]
        assert all(b.pods == 4 and b.memory_bytes == 4 * GI and b.scheduled for b in bursts)

    def test_the_time_zone_moves_the_fire_time(self) -> None:
        """09:00 in Kolkata (UTC+05:30) is 03:30 UTC."""
        source = cron("0 9 * * *", time_zone="Asia/Kolkata")
        (burst,) = forecasting.cron_bursts(source, T0, 86400, GI)
        assert burst.at == utc(3, 30)

    def test_without_a_time_zone_the_schedule_is_read_in_utc(self) -> None:
        (burst,) = forecasting.cron_bursts(cron("0 9 * * *"), T0, 86400, GI)
        assert burst.at == utc(9, 0)

    def test_a_suspended_cronjob_forecasts_nothing(self) -> None:
        assert forecasting.cron_bursts(cron(suspended=True), T0, 3600, GI) == ()

    def test_forbid_with_an_active_run_skips_the_next_fire_only(self) -> None:
        source = cron(concurrency=forecasting.CONCURRENCY_FORBID, active=1)
        bursts = forecasting.cron_bursts(source, T0, 900, GI)
        assert [b.at for b in bursts] == [utc(0, 10), utc(0, 15)]

    @pytest.mark.parametrize(
        "concurrency", [forecasting.CONCURRENCY_ALLOW, forecasting.CONCURRENCY_REPLACE]
    )
    def test_allow_and_replace_start_a_full_run_at_every_fire(self, concurrency: str) -> None:
        source = cron(concurrency=concurrency, active=1)
        assert len(forecasting.cron_bursts(source, T0, 900, GI)) == 3

    def test_recent_runs_that_started_late_move_the_landing_time(self) -> None:
        source = cron(lags_s=(4.0, 6.0, 5.0, 2000.0))  # the 2000 s run was a missed schedule
        bursts = forecasting.cron_bursts(source, T0, 900, GI)
        assert [b.at for b in bursts] == [utc(0, 5) + 5, utc(0, 10) + 5, utc(0, 15) + 5]

    def test_pods_without_a_memory_request_count_at_the_policy_default(self) -> None:
        source = cron(shape=forecasting.PodShape(None))
        (burst, *_) = forecasting.cron_bursts(source, T0, 900, 256 * 2**20)
        assert burst.memory_bytes == 4 * 256 * 2**20

    @pytest.mark.parametrize(
        "schedule",
        [
            pytest.param("* * * *", id="four-fields"),
            pytest.param("0 * * * * *", id="seconds-field"),
            pytest.param("H * * * *", id="jenkins-hash"),
            pytest.param("@every 5m", id="unknown-descriptor"),
            pytest.param("61 * * * *", id="minute-out-of-range"),
        ],
    )
    def test_a_schedule_kubernetes_would_refuse_is_an_error_not_a_guess(
        self, schedule: str
    ) -> None:
        result = forecasting.forecast([cron(schedule)], [], T0, 3600, GI)
        assert result.bursts == ()
        assert result.errors and result.errors[0][0] == "CronJob batch/nightly"

    def test_an_unknown_time_zone_is_an_error(self) -> None:
        result = forecasting.forecast([cron(time_zone="Mars/Olympus")], [], T0, 3600, GI)
        assert result.bursts == () and "timeZone" in result.errors[0][1]

    def test_a_descriptor_is_a_schedule(self) -> None:
        (burst,) = forecasting.cron_bursts(cron("@hourly"), T0, 3600, GI)
        assert burst.at == utc(1, 0)


class TestPendingDemand:
    def test_a_suspended_job_may_land_now(self) -> None:
        job = forecasting.PendingSource("batch/held", forecasting.KIND_JOB, 8, cron().shape)
        (burst,) = forecasting.pending_bursts([job], T0, GI)
        assert burst.at == T0 and not burst.scheduled and burst.memory_bytes == 8 * GI

    def test_a_job_kueue_queued_counts_once_as_its_workload(self) -> None:
        shape = forecasting.PodShape(GI)
        job = forecasting.PendingSource("b/j", forecasting.KIND_JOB, 8, shape, uid="u1")
        workload = forecasting.PendingSource(
            "b/job-j-123", forecasting.KIND_WORKLOAD, 8, shape, uid="w1", owner_uid="u1"
        )
        bursts = forecasting.pending_bursts([job, workload], T0, GI)
        assert [b.source for b in bursts] == ["Workload b/job-j-123"]


class TestForecast:
    def test_bursts_come_earliest_first_with_pending_demand_at_now(self) -> None:
        held = forecasting.PendingSource("b/h", forecasting.KIND_JOB, 2, cron().shape)
        result = forecasting.forecast([cron("0 1 * * *"), cron()], [held], T0, 3600, GI)
        next_burst = result.next()
        assert next_burst is not None and next_burst.source == "Job b/h"
        assert [b.at for b in result.bursts] == sorted(b.at for b in result.bursts)

    def test_due_keeps_bursts_within_the_lead_time_that_have_not_landed(self) -> None:
        bursts = forecasting.cron_bursts(cron(), T0, 900, GI)  # 00:05, 00:10, 00:15
        due = forecasting.due(bursts, 120, T0)
        assert [b.at for b in due] == [utc(0, 5)]
        assert forecasting.due(bursts, 60, T0) == ()

    @settings(max_examples=200, deadline=None)
    @given(
        step=st.integers(min_value=1, max_value=59),
        now=st.floats(min_value=T0, max_value=T0 + 86400 * 365),
        horizon=st.floats(min_value=0, max_value=7200),
        lag=st.floats(min_value=0, max_value=300),
        zone=st.sampled_from([None, "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    )
    def test_every_forecast_burst_lands_after_now_within_the_horizon_in_order(
        self, step: int, now: float, horizon: float, lag: float, zone: str | None
    ) -> None:
        source = cron(f"*/{step} * * * *", time_zone=zone, lags_s=(lag,))
        bursts = forecasting.cron_bursts(source, now, horizon, GI)
        times = [b.at for b in bursts]
        assert times == sorted(set(times))
        assert all(now < t <= now + horizon for t in times)
        # Fires are whole minutes of the zone's clock (every zone here is whole-minute offset).
        assert all((t - lag) % 60 == 0 for t in times)
        # Nothing is missed: count the matching minutes of the zone's clock independently.
        tz = zoneinfo.ZoneInfo(zone or "UTC")
        minute = math.floor((now - lag) / 60) * 60 + 60
        expected = []
        while minute <= now + horizon - lag:
            if datetime.datetime.fromtimestamp(minute, tz=tz).minute % step == 0:
                expected.append(minute + lag)
            minute += 60
        assert times == pytest.approx(expected[: forecasting.MAX_FIRES])

    @settings(max_examples=200, deadline=None)
    @given(
        pods=st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
        per_pod=st.one_of(st.none(), st.integers(min_value=1, max_value=64 * GI)),
    )
    def test_pending_memory_is_pods_times_per_pod_memory(
        self, pods: list[int], per_pod: int | None
    ) -> None:
        shape = forecasting.PodShape(per_pod)
        sources = [
            forecasting.PendingSource(f"b/{i}", forecasting.KIND_JOB, n, shape)
            for i, n in enumerate(pods)
        ]
        bursts = forecasting.pending_bursts(sources, T0, GI)
        assert sum(b.memory_bytes for b in bursts) == sum(pods) * (per_pod or GI)
        assert all(b.pods > 0 for b in bursts)
