"""The node benchmark's figures, medians and report, from small recorded runs.

The runs are built here (pod milestones and vmstat counters as the runner records them), so
the report code is checked without a node; ``burstguard bench node --report-only`` rebuilds
the report from such recordings.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from burstguard.cli import main
from burstguard.k8s import podtimes
from burstguard.nodebench import results


def run(
    scenario: str, index: int, starts: list[float], pgscan: int, gate: float = 0.0
) -> results.Run:
    pods = [
        results.PodTimes(
            name=f"p{i}",
            created_at=100.0,
            ungated_at=100.0 + gate if gate else None,
            started_at=100.0 + s,
            finished_at=100.0 + s + 3.0,
        )
        for i, s in enumerate(starts)
    ]
    return results.Run(
        scenario=scenario,
        index=index,
        began_at=100.0,
        ended_at=120.0,
        pods=pods,
        vmstat_before={"pgscan_kswapd": 1000, "pgscan_direct": 0, "allocstall_normal": 1},
        vmstat_after={"pgscan_kswapd": 1000 + pgscan, "pgscan_direct": 10, "allocstall_normal": 3},
        kswapd_wakes=4,
        memory=[results.MemorySample(0.0, 200 * 2**20, 66 * 2**20, 85 * 2**20, 104 * 2**20, 2**34)],
    )


RUNS = [
    run("unguarded", 1, [4.0, 5.0, 6.0, 7.0], pgscan=100_000),
    run("guarded", 1, [1.0, 1.5, 2.0, 2.5], pgscan=5_000, gate=1.0),
    run("unguarded", 2, [4.5, 5.5, 6.5, 8.0], pgscan=120_000),
    run("guarded", 2, [1.0, 1.2, 2.2, 3.0], pgscan=7_000, gate=2.0),
]


def test_a_runs_figures_are_its_start_quantiles_makespan_and_vmstat_deltas() -> None:
    f = results.figures(RUNS[0])
    assert f["pods"] == 4 and f["pods_started"] == 4
    assert (f["start_p50_s"], f["start_max_s"], f["makespan_s"]) == (6.0, 7.0, 10.0)
    assert (f["pgscan_kswapd"], f["pgscan_direct"], f["allocstall"]) == (100_000, 10, 2)
    assert f["gate_max_s"] == 0.0 and f["released_overdue"] == 0


def test_each_scenario_keeps_every_run_beside_the_median() -> None:
    summary = results.summarize(RUNS)["scenarios"]
    assert set(summary) == {"unguarded", "guarded"}
    assert [r["run"] for r in summary["guarded"]["runs"]] == [1, 2]
    assert summary["unguarded"]["median"]["pgscan_kswapd"] == 110_000
    assert summary["guarded"]["max"]["gate_max_s"] == 2.0
    assert set(summary["guarded"]["median"]) == set(results.FIGURES)


def test_goals_say_met_or_missed_from_the_medians() -> None:
    verdicts = {text: verdict for text, _, verdict in results.goals(results.summarize(RUNS))}
    assert verdicts["guarded start p99 at least 3x lower"] == "MISSED"  # 2.75 vs 7.5 s
    assert verdicts["guarded pgscan (kswapd + direct) at least 80 % lower"] == "met"
    assert verdicts["none stranded, none released overdue"] == "met"


def test_the_node_start_is_measured_from_the_release_and_compared_with_unguarded_starts() -> None:
    f = results.figures(RUNS[1])  # gate 1.0 s, starts 1.0-2.5 s after creation
    assert (f["node_start_p50_s"], f["node_start_max_s"]) == (1.0, 1.5)
    assert f["start_max_s"] == 2.5
    unguarded = results.figures(RUNS[0])
    assert unguarded["node_start_p99_s"] == unguarded["start_p99_s"]
    rows = {text: (figs, v) for text, figs, v in results.goals(results.summarize(RUNS))}
    node_row = next(r for t, r in rows.items() if t.startswith("guarded node start p99"))
    assert node_row[1] == "met"  # median node start p99 1.25 s vs unguarded 7.5 s


def test_a_pod_that_never_started_counts_as_stranded() -> None:
    stuck = run("guarded", 1, [1.0], pgscan=0)
    stuck.pods.append(results.PodTimes(name="late", created_at=100.0))
    summary = results.summarize([run("unguarded", 1, [2.0], pgscan=10), stuck])
    verdicts = {text: v for text, _, v in results.goals(summary)}
    assert verdicts["none stranded, none released overdue"] == "MISSED"


def test_a_pod_the_runtime_failed_to_start_is_counted_apart_not_as_stranded() -> None:
    flaky = run("guarded", 1, [1.0], pgscan=0)
    flaky.pods.append(results.PodTimes(name="err", created_at=100.0, finished_at=102.0))
    assert results.figures(flaky)["pods_failed_to_start"] == 1
    summary = results.summarize([run("unguarded", 1, [2.0], pgscan=10), flaky])
    verdicts = {text: v for text, _, v in results.goals(summary)}
    assert verdicts["none stranded, none released overdue"] == "met"


def test_report_only_rebuilds_results_json_and_the_report_from_recorded_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "runs").mkdir()
    for r in RUNS:
        results.save_run(r, tmp_path / "runs" / f"{r.scenario}-{r.index}.json")
    answer = CliRunner().invoke(
        main.cli, ["bench", "node", "--out", str(tmp_path), "--report-only"]
    )
    assert answer.exit_code == 0, answer.output
    body = json.loads((tmp_path / "results.json").read_text())
    for name in ("unguarded", "guarded"):
        assert set(body["scenarios"][name]["median"]) == set(results.FIGURES)
        assert len(body["scenarios"][name]["runs"]) == 2
    report = (tmp_path / "REPORT.md").read_text()
    assert "| start_p99_s |" in report and "Goals, guarded vs unguarded" in report


def test_the_pod_store_stamps_each_milestone_once_when_the_watch_first_shows_it() -> None:
    clock = iter([1.0, 2.0, 3.0, 4.0, 5.0])
    store = podtimes.PodTimes(clock=lambda: next(clock))
    gate = {"schedulingGates": [{"name": "burstguard.io/paced"}]}
    store.apply("ADDED", {"metadata": {"name": "a"}, "spec": gate, "status": {}})
    store.apply("MODIFIED", {"metadata": {"name": "a"}, "spec": {}, "status": {}})
    running = {"containerStatuses": [{"started": True, "state": {"running": {}}}]}
    store.apply("MODIFIED", {"metadata": {"name": "a"}, "spec": {}, "status": running})
    store.apply("MODIFIED", {"metadata": {"name": "a"}, "spec": {}, "status": running})
    store.apply(
        "MODIFIED", {"metadata": {"name": "a"}, "status": {"phase": "Succeeded", **running}}
    )
    m = store.pods["a"]
    assert (m.created_at, m.ungated_at, m.started_at, m.finished_at) == (1.0, 2.0, 3.0, 5.0)
