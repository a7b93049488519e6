"""The demo's report: a comparison table, JSON and a PNG, all labelled as a simulation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from burstguard.cli import demo


def run(name: str, *, stalls: int, makespan: float | None) -> demo.RunResult:
    return demo.RunResult(
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
    text = demo.table(
        [run("without", stalls=3, makespan=12.0), run("with", stalls=0, makespan=None)]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["without", "with"]
    modelled = next(line for line in lines if line.startswith("makespan, modelled"))
    assert modelled.split()[-2:] == ["11.0", "-"]
    seen = next(line for line in lines if line.startswith("makespan as the API"))
    assert seen.split()[-2:] == ["12.0", "-"]


def test_the_report_files_say_they_are_a_simulation(tmp_path: Path) -> None:
    demo.write_report(
        [run("without", stalls=3, makespan=12.0), run("with", stalls=0, makespan=15.0)],
        demo.DemoConfig(),
        tmp_path,
    )
    assert (tmp_path / "report.txt").read_text().startswith("SIMULATION")
    body = json.loads((tmp_path / "report.json").read_text())
    assert body["simulated"] is True
    assert [r["name"] for r in body["runs"]] == ["without", "with"]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_report_is_text_and_json_and_says_why_there_is_no_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    drawn = demo.write_report(
        [run("without", stalls=3, makespan=12.0)], demo.DemoConfig(), tmp_path
    )
    assert drawn is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.txt"]
    assert "pip install 'burstguard[demo]'" in demo.NO_PLOT


def test_the_enforce_policy_is_valid_and_guards_only_simulated_nodes() -> None:
    from burstguard.api import policy as policy_api  # noqa: PLC0415

    parsed = policy_api.parse(demo.enforce_policy(demo.DemoConfig()))
    assert parsed.errors == ()
    assert parsed.spec.enforcing
    assert parsed.spec.nodes.node_selector.match_labels == (("burstguard.io/simulated", "true"),)
