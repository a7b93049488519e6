"""The agent on this machine: real /proc, real bpftrace, real compaction and cache drops."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import threading
import time

import pytest

from burstguard.agent import sampling
from burstguard.api import names
from burstguard.api import preparation as request_api
from burstguard.cli import agent as cli_agent
from burstguard.core import preparation
from burstguard.exporter import metrics
from tests.node import workloads

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "proc"
MIB = 2**20


def counts(view: metrics.View, map_name: str) -> int:
    hist = sum(c for h in view.bpf_histograms if h.map_name == map_name for _, _, c in h.buckets)
    return hist + sum(c.value for c in view.bpf_counters if c.map_name == map_name)


@dataclasses.dataclass
class Recorder:
    """Runs the agent loop in a thread and keeps every sample."""

    agent: sampling.Agent
    samples: list[sampling.Sample] = dataclasses.field(default_factory=list)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.samples.append(self.agent.tick())
            self.stop.wait(0.25)

    def __enter__(self) -> Recorder:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=10)


class TestSignalsUnderRealLoad:
    def test_mount_and_reclaim_histograms_are_reported_while_overlays_mount_under_pressure(
        self, bpftrace: str
    ) -> None:
        runner = cli_agent.start_bpf("/proc")
        agent = sampling.Agent(sampling.Config(node_name="node-test"), runner=runner)
        hog_bytes, fill_bytes = workloads.pressure_sizes()
        try:
            with Recorder(agent) as rec:
                deadline = time.monotonic() + 30
                while not all(
                    s.state == "running" for s in runner.statuses() if s.state != "skipped"
                ):
                    assert time.monotonic() < deadline, runner.statuses()
                    time.sleep(0.5)
                # mounts run on their own thread while the hog is resident and dd fills
                with (
                    workloads.anon_hog(hog_bytes),
                    workloads.mount_loop(400),
                    workloads.page_cache_file(fill_bytes),
                ):
                    pass
                time.sleep(11)  # two more bpftrace windows (5 s each)
        finally:
            runner.stop()
        last = rec.samples[-1].view
        summaries = [s.summary for s in rec.samples if s.summary is not None]
        # cumulative maps, windows as differences: every one of the 400 mounts is counted
        assert counts(last, "mount_ns") >= 400
        assert counts(last, "kswapd_wakes") + counts(last, "direct_reclaim_ns") > 0
        assert counts(last, "shrink_slab_ns") > 0
        assert any(s.rates.pgscan_kswapd > 0 for s in summaries)
        assert any(s.mount_p99_s is not None for s in summaries)
        assert all(s.signal_source == "procfs+bpf" for s in summaries[-5:])
        text = metrics.render(last).decode()
        assert 'burstguard_bpf_mount_seconds_count{fstype="overlay"}' in text


class TestPreparation:
    def request(self, agent: sampling.Agent, request_id: str, wanted: int) -> None:
        body = request_api.encode(request_api.PrepareRequest(request_id, wanted, time.time()))
        agent.on_annotations({names.PREPARE_REQUEST_ANNOTATION: body})

    def test_a_compaction_and_drop_cache_request_is_executed_and_acknowledged(
        self, root: None
    ) -> None:
        params = preparation.Params(
            compaction_below_ratio=1.01,  # compact regardless of fragmentation
            drop_page_cache=True,
            skip_when_busy=False,  # earlier tests may leave kswapd scanning for a moment
        )
        config = sampling.Config(
            node_name="node-test", dry_run=False, preparation=params, bpf=False
        )
        agent = sampling.Agent(config)
        with workloads.page_cache_file(2 * workloads.GIB):
            agent.tick()
            self.request(agent, "req-1", 4 * workloads.GIB)
            ack = agent.prepare_step()
        assert ack is not None and ack.id == "req-1" and not ack.dry_run
        outcomes = {r.kind: r for r in ack.actions}
        assert outcomes["compact"].outcome == "done"
        assert outcomes["drop_caches"].outcome == "done" and outcomes["drop_caches"].target == "1"
        assert outcomes["drop_caches"].freed_bytes > 1024 * MIB
        assert ack.freed_bytes == ack.headroom_after_bytes - ack.headroom_before_bytes
        assert agent.prepare_step() is None  # the same id is not served twice
        assert agent.prep_actions[("drop_caches", "done")] == 1

    def test_dry_run_reports_the_plan_and_changes_nothing(self, root: None) -> None:
        params = preparation.Params(
            compaction_below_ratio=1.01, drop_page_cache=True, skip_when_busy=False
        )
        agent = sampling.Agent(
            sampling.Config(node_name="node-test", preparation=params, bpf=False)
        )
        with workloads.page_cache_file(1 * workloads.GIB) as path:
            agent.tick()
            cached_before = workloads.meminfo_bytes("Cached")
            self.request(agent, "req-dry", 4 * workloads.GIB)
            ack = agent.prepare_step()
            assert workloads.meminfo_bytes("Cached") > cached_before - 512 * MIB
            assert path.exists()
        assert ack is not None and ack.dry_run
        assert {r.outcome for r in ack.actions if r.kind in ("compact", "drop_caches")} == {
            "dry_run"
        }


class TestDegradation:
    def test_a_garbled_proc_file_degrades_with_the_file_named_and_no_crash(
        self, tmp_path: pathlib.Path
    ) -> None:
        root = tmp_path / "proc"
        shutil.copytree(FIXTURES / "host-6.18-idle", root)
        agent = sampling.Agent(
            sampling.Config(node_name="node-test", proc_root=str(root), bpf=False)
        )
        assert agent.tick().summary is not None
        (root / "zoneinfo").write_text("Node 0, zone   Normal\n  pages free  not-a-number\n")
        sample = agent.tick()
        assert sample.summary is None
        assert "zoneinfo" in sample.view.degraded["procfs"]
        text = metrics.render(sample.view).decode()
        assert 'burstguard_agent_sample_errors_total{kind="parse"} 1.0' in text
        assert 'source="procfs"} 1.0' in text

    def test_without_bpftrace_on_path_the_agent_runs_on_procfs_and_says_why(
        self, monkeypatch: pytest.MonkeyPatch, root: None
    ) -> None:
        monkeypatch.setenv("PATH", "/nonexistent")
        runner = cli_agent.start_bpf("/proc")
        agent = sampling.Agent(sampling.Config(node_name="node-test"), runner=runner)
        agent.tick()
        summary = agent.tick().summary
        assert summary is not None
        assert summary.signal_source == "procfs"
        assert "bpftrace not found" in summary.degraded_reason
        assert runner.programs == {}
