"""``burstguard recommend`` on recorded timelines: output formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from burstguard.api import policy as policy_api
from burstguard.cli import recommend
from burstguard.core import recommending
from tests.unit.test_recommending import HistoryBuilder


def timeline(tmp_path: Path, *histories: recommending.NodeHistory) -> Path:
    path = tmp_path / "timeline.json"
    path.write_text(recommending.encode_timeline(histories, "test"))
    return path


def fleet_timeline(tmp_path: Path) -> Path:
    return timeline(
        tmp_path,
        HistoryBuilder(node="old", exposed=True).idle(3).burst(12, allocstall=2).build(),
        HistoryBuilder(node="new", exposed=False).idle(3).burst(12).build(),
    )


def test_yaml_output_is_a_valid_dry_run_policy_with_the_evidence_as_comments(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        recommend.command, ["--timeline", str(fleet_timeline(tmp_path)), "-o", "yaml"]
    )
    assert result.exit_code == 0, result.output
    assert "# spec.pacing.maxStartingPerNode" in result.output
    parsed = policy_api.parse(yaml.safe_load(result.output))
    assert parsed.errors == () and parsed.spec.mode == "DryRun"


def test_the_table_shows_the_exposure_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(recommend.command, ["--timeline", str(fleet_timeline(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "Fleet exposure: 1 of 2 nodes" in result.output
    assert "vm.watermark_scale_factor" in result.output


def test_json_output_carries_policy_evidence_and_exposure(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        recommend.command, ["--timeline", str(fleet_timeline(tmp_path)), "-o", "json"]
    )
    body = json.loads(result.output)
    assert body["policy"]["kind"] == "BurstPolicy"
    assert len(body["evidence"]["bursts"]) == 2
    assert {row["node"] for row in body["exposure"]} == {"old", "new"}


def test_a_source_is_required(tmp_path: Path) -> None:
    assert CliRunner().invoke(recommend.command, []).exit_code == recommend.EXIT_USAGE


def test_a_timeline_without_samples_exits_with_no_history(tmp_path: Path) -> None:
    empty = timeline(tmp_path, recommending.NodeHistory(node="a", samples=()))
    result = CliRunner().invoke(recommend.command, ["--timeline", str(empty)])
    assert result.exit_code == recommend.EXIT_EMPTY
    assert "no node history" in result.output


def test_a_garbled_timeline_exits_with_a_source_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    result = CliRunner().invoke(recommend.command, ["--timeline", str(bad)])
    assert result.exit_code == recommend.EXIT_SOURCE
    assert "Traceback" not in result.output


def test_an_unreachable_prometheus_exits_with_a_source_error() -> None:
    result = CliRunner().invoke(
        recommend.command, ["--prometheus", "http://127.0.0.1:9", "--since", "5m"]
    )
    assert result.exit_code == recommend.EXIT_SOURCE
    assert "unreachable" in result.output
