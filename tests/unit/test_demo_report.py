"""The demo's report: a comparison table, JSON with the policies it ran, a PNG, all labelled
as a simulation; and the README's demo table is the committed report's."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from pathlib import Path

import pytest

from burstguard.api import policy as policy_api
from burstguard.reporting import scenarios
from burstguard.simulation import demoing, demoreport, monitoring, running

REPO = pathlib.Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "demo" / "report.json"


def run(name: str, *, stalls: int, makespan: float | None) -> monitoring.RunResult:
    return monitoring.RunResult(
        name=name,
        pods=600,
        completed=makespan is not None,
        makespan_s=makespan,
        modelled_makespan_s=None if makespan is None else makespan - 1,
        nodes_entered_reclaim=stalls * 2,
        modelled_stalls=stalls,
        max_starting_per_node=30 if stalls else 4,
        trace=[(0.5 * i, 10 * i, 4, 8 * i, 2, stalls) for i in range(20)],
    )


def test_the_table_has_one_column_per_run_and_a_dash_for_missing_numbers() -> None:
    text = demoreport.table(
        [run("without", stalls=3, makespan=12.0), run("with", stalls=0, makespan=None)]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["without", "with"]
    modelled = next(line for line in lines if line.startswith("makespan, modelled"))
    assert modelled.split()[-2:] == ["11.0", "-"]
    seen = next(line for line in lines if line.startswith("makespan as the API"))
    assert seen.split()[-2:] == ["12.0", "-"]


def test_the_report_files_say_they_are_a_simulation_and_carry_the_policies(
    tmp_path: Path,
) -> None:
    policy = {"run": "with", "label": "chart defaults", "spec": {"mode": "Enforce"}}
    demoreport.write(
        [run("without", stalls=3, makespan=12.0), run("with", stalls=0, makespan=15.0)],
        monitoring.DemoConfig(),
        tmp_path,
        policies=[policy],
    )
    assert (tmp_path / "report.txt").read_text().startswith("SIMULATION")
    body = json.loads((tmp_path / "report.json").read_text())
    assert body["simulated"] is True
    assert body["policies"] == [policy]
    assert [r["name"] for r in body["runs"]] == ["without", "with"]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_written_report_loads_back_to_the_same_table(tmp_path: Path) -> None:
    results = [run("without", stalls=3, makespan=12.0), run("with", stalls=0, makespan=None)]
    demoreport.write(results, monitoring.DemoConfig(), tmp_path)
    _, loaded = scenarios.load(tmp_path / "report.json")
    assert scenarios.table(demoreport.ROWS, loaded) == demoreport.table(results)


def test_the_default_policy_names_only_mode_and_selectors() -> None:
    body = demoing.default_policy()
    assert set(body["spec"]) == {"mode", "pods", "nodes"}
    parsed = policy_api.parse(body)
    assert parsed.errors == ()
    assert parsed.spec.enforcing
    assert parsed.spec.nodes.node_selector.match_labels == (("burstguard.io/simulated", "true"),)
    assert parsed.spec.pacing == policy_api.Pacing()
    assert parsed.spec.headroom == policy_api.HeadroomRules()
    assert parsed.spec.preparation == policy_api.Preparation()


@pytest.mark.xfail(
    strict=True,
    reason="known stale: docs/demo/report.json was run with maxStartingPerNode 8 and a dry-run "
    "agent, the defaults before the real-node measurements (16, agent preparing); it passes "
    "again once the demo is re-run with the current defaults",
)
def test_the_committed_report_ran_the_chart_defaults_with_a_dry_run_agent() -> None:
    body = json.loads(COMMITTED.read_text())
    assert body["simulated"] is True
    defaults = [p for p in body["policies"] if p["label"] == demoing.DEFAULTS_LABEL]
    assert defaults and defaults[0]["served"]
    spec = policy_api.parse({"metadata": {"name": "x"}, "spec": defaults[0]["spec"]}).spec
    assert spec.pacing == policy_api.Pacing()
    assert spec.headroom == policy_api.HeadroomRules()
    assert spec.preparation == policy_api.Preparation()
    assert defaults[0]["agent"]["dry_run"] is True
    assert defaults[0]["agent"]["preparation"]["drop_page_cache"] is False


def test_the_readme_demo_table_is_the_committed_reports() -> None:
    readme = (REPO / "README.md").read_text()
    assert demoreport.readme_table(COMMITTED) in readme, (
        "regenerate: python -m burstguard.simulation.demoreport docs/demo/report.json"
    )


def test_a_cronjob_schedule_fires_on_the_first_whole_minute_after_the_notice() -> None:
    now = 1_800_000_000.0 + 17.5  # 17.5 s past a whole minute
    schedule = demoing.cron_schedule(now, notice_s=45)
    assert schedule.fires_at == 1_800_000_060.0 + 60  # 17.5 + 45 = 62.5 s: the next minute
    assert schedule.fires_at - now >= 45
    minute, hour, *rest = schedule.cron.split()
    assert rest == ["*", "*", "*"]
    assert (int(hour) * 60 + int(minute)) * 60 == int(schedule.fires_at) % 86_400


def test_the_cronjob_runs_differ_only_in_the_lead_time() -> None:
    runs = demoing.plan(
        monitoring.DemoConfig(),
        running.Config(),
        guarded=True,
        tuned=False,
        cron=True,
    )
    by_name = {r.name: r for r in runs}
    assert [r.name for r in runs] == [
        demoing.UNGUARDED,
        demoing.GUARDED,
        demoing.CRON_UNGUARDED,
        demoing.CRON_GUARDED,
        demoing.CRON_AHEAD,
    ]
    assert by_name[demoing.CRON_UNGUARDED].policy is None
    guarded, ahead = by_name[demoing.CRON_GUARDED], by_name[demoing.CRON_AHEAD]
    assert guarded.cron and ahead.cron and by_name[demoing.CRON_UNGUARDED].cron
    assert guarded.agent == ahead.agent and not guarded.agent.dry_run
    assert guarded.agent.preparation.drop_page_cache
    assert guarded.policy is not None and ahead.policy is not None
    plain = policy_api.parse(guarded.policy).spec
    early = policy_api.parse(ahead.policy).spec
    assert plain == policy_api.parse(demoing.default_policy()).spec
    assert plain.preparation.lead_time_s == 0
    assert early.preparation.lead_time_s == demoing.LEAD_TIME_S
    assert early.pacing == plain.pacing and early.headroom == plain.headroom
    assert dataclasses.replace(early.preparation, lead_time_s=0) == plain.preparation


def ran(name: str, makespan: float | None, reclaim: int, launched: str) -> monitoring.RunResult:
    return monitoring.RunResult(
        name=name,
        pods=600,
        completed=makespan is not None,
        modelled_makespan_s=makespan,
        nodes_entered_reclaim=reclaim,
        launched=launched,
    )


def test_each_makespan_is_compared_with_the_unguarded_run_of_the_same_burst() -> None:
    cron = "CronJob 1 2 * * *"
    results = [
        ran(demoing.UNGUARDED, 6.0, 20, "Job"),
        ran(demoing.GUARDED, 12.0, 2, "Job"),
        ran(demoing.CRON_UNGUARDED, 8.0, 20, cron),
        ran(demoing.CRON_GUARDED, 20.0, 3, cron),
        ran(demoing.CRON_AHEAD, None, 0, cron),
    ]
    demoing.compare(results)
    assert [r.makespan_ratio for r in results] == [1.0, 2.0, 1.0, 2.5, None]


def test_the_lead_time_goal_is_reported_met_or_missed() -> None:
    cron = "CronJob 1 2 * * *"
    base = ran(demoing.CRON_UNGUARDED, 10.0, 20, cron)
    for makespan, reclaim, verdict in (
        (11.5, 1, "goal met"),
        (11.6, 0, "goal MISSED"),
        (10.0, 2, "goal MISSED"),
        (None, 0, "goal MISSED"),
    ):
        results = [base, ran(demoing.CRON_AHEAD, makespan, reclaim, cron)]
        demoing.compare(results)
        [line] = demoing.goals(results, 20)
        assert line.startswith(verdict), line
        assert f"{reclaim} of 20 nodes" in line
    assert demoing.goals([base], 20) == []
