"""The agent's whole /metrics output on a fixture proc root, compared with a golden file.

The agent samples ``host-6.18-pressure-a`` and then ``host-6.18-pressure-b`` (copied into one
proc root between its two ticks, so the rates are the real ones between the two captures),
with the BPF side replayed from the real bpftrace captures in ``tests/fixtures/bpf``.
Clocks are injected, so the output is byte-for-byte stable. After an intended change, run
``UPDATE_GOLDEN=1 pytest tests/unit/test_metrics_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import pathlib
import shutil

from prometheus_client import parser

from burstguard.agent import sampling
from burstguard.bpf import running, specs
from burstguard.exporter import metrics

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
BPF = pathlib.Path(__file__).parent.parent.parent / "bpf"
GOLDEN = FIXTURES / "metrics" / "agent-host-6.18-pressure.prom"


def replayed_bpf() -> running.Replay:
    captures = {}
    for name in ("mount_latency", "reclaim", "shrinker_lock_6_7"):
        spec = specs.load(BPF / f"{name}.yaml")
        lines = (FIXTURES / "bpf" / f"{name}-6.18.jsonl").read_text().splitlines()
        captures[name] = (spec, lines)
    return running.Replay(captures, cumulative=False)  # captured when windows were cleared


def render_fixture_agent(root: pathlib.Path) -> str:
    shutil.copytree(FIXTURES / "proc" / "host-6.18-pressure-a", root)
    clock = [1000.0]
    agent = sampling.Agent(
        sampling.Config(node_name="fixture", proc_root=str(root)),
        runner=replayed_bpf(),
        mono=lambda: clock[0],
        wall=lambda: 1_795_000_000.0,
    )
    agent.tick()
    shutil.copytree(FIXTURES / "proc" / "host-6.18-pressure-b", root, dirs_exist_ok=True)
    clock[0] += 1.0  # the two captures were taken 1 s apart
    sample = agent.tick()
    return metrics.render(sample.view).decode()


def test_metrics_output_matches_the_golden_file(tmp_path: pathlib.Path) -> None:
    text = render_fixture_agent(tmp_path / "proc")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_golden_output_parses_and_follows_the_naming_rules() -> None:
    families = list(parser.text_string_to_metric_families(GOLDEN.read_text()))
    assert families
    for family in families:
        assert family.name.startswith("burstguard_")
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.name.endswith(("_bytes", "_seconds")):
            assert family.type in ("gauge", "counter", "histogram")
    names = {f.name for f in families}
    assert {
        "burstguard_zone_free_bytes",
        "burstguard_node_headroom_bytes",
        "burstguard_node_reclaim_rate_per_second",
        "burstguard_node_memory_pressure_ratio",
        "burstguard_bpf_mount_seconds",
        "burstguard_bpf_direct_reclaim_seconds",
        "burstguard_bpf_kswapd_wakes",
        "burstguard_preparation_actions",
        "burstguard_signal_source_degraded",
    } <= names


def test_the_fixture_pair_shows_kswapd_scanning_in_the_rates() -> None:
    golden = GOLDEN.read_text()
    line = next(
        line
        for line in golden.splitlines()
        if line.startswith('burstguard_node_reclaim_rate_per_second{counter="pgscan_kswapd"}')
    )
    assert float(line.split()[-1]) > 0
