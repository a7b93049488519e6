"""The BPF side on this machine: one bpftrace process, cumulative windows, its memory."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from burstguard.bpf import choosing, decoding, running, specs
from burstguard.cli import agent as cli_agent
from tests.node import workloads

MIB = 2**20
FOOTPRINT = """
import json, sys, threading, time
from burstguard.agent import sampling
from burstguard.cli import agent as cli_agent
runner = cli_agent.start_bpf("/proc")
agent = sampling.Agent(sampling.Config(node_name="footprint", hz=4.0), runner=runner)
stop = threading.Event()
loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
loop.start()
while any(s.state == "starting" for s in runner.statuses()):
    time.sleep(0.2)
trimmed = next(iter(runner.programs.values())).trimmed if runner.programs else None
print(json.dumps({
    "pids": list(runner.pids()),
    "statuses": [s.state for s in runner.statuses()],
    "trimmed": trimmed.advised_bytes if trimmed else 0,
}), flush=True)
sys.stdin.readline()
stop.set(); loop.join(timeout=5); agent.stop()
"""


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB, from /proc/<pid>/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0])
    return fields["Rss"], fields["Pss"]


def ramfs_mounts(count: int, spacing_s: float, done: list[int]) -> None:
    """Mount and unmount a ramfs ``count`` times; ``done`` gets the mounts that succeeded."""
    base = Path(tempfile.mkdtemp(prefix="bg-ramfs-"))
    mounted = 0
    try:
        for _ in range(count):
            if workloads._libc.mount(b"none", str(base).encode(), b"ramfs", 0, None) != 0:
                raise OSError(f"mount ramfs: {os.strerror(workloads.ctypes.get_errno())}")
            mounted += 1
            workloads._libc.umount2(str(base).encode(), 0)
            time.sleep(spacing_s)
    finally:
        done.append(mounted)
        base.rmdir()


def ramfs_count(window: decoding.Window | None) -> int:
    value = None if window is None else window.maps.get("mount_ns")
    return 0 if value is None else decoding.total(value.histograms.get("ramfs", ()))


class TestOneProgram:
    def test_every_mount_is_in_exactly_one_window_across_window_boundaries(
        self, bpftrace: str
    ) -> None:
        runner = cli_agent.start_bpf("/proc")
        try:
            assert len(runner.pids()) == 1, runner.statuses()
            program = runner.programs["mount_latency"]
            deadline = time.monotonic() + 60
            while program.status("mount_latency").state != "running":
                assert time.monotonic() < deadline, runner.statuses()
                time.sleep(0.2)
            windows: dict[int, decoding.Window | None] = {}
            done: list[int] = []
            mounts = threading.Thread(target=ramfs_mounts, args=(300, 0.04, done), daemon=True)
            first = program.status("mount_latency").windows
            last_needed: int | None = None  # one window after the last mount
            mounts.start()
            while last_needed is None or max(windows, default=0) < last_needed:
                n = program.status("mount_latency").windows
                if n > first and n not in windows:
                    window = program.latest("mount_latency")[0]
                    if program.status("mount_latency").windows == n:  # not one window later
                        windows[n] = window
                if last_needed is None and not mounts.is_alive():
                    last_needed = n + 1
                assert time.monotonic() < deadline + 60, "no window after the mounts"
                time.sleep(0.05)
            totals = runner.totals()["mount_latency"]
        finally:
            runner.stop()
        assert sorted(windows) == list(range(first + 1, max(windows) + 1)), "a window was missed"
        per_window = [ramfs_count(w) for _, w in sorted(windows.items())]
        total = decoding.total(totals.histograms.get(("mount_ns", "ramfs"), ()))
        print(f"ramfs mounts per window: {per_window}, cumulative {total}, done {done}")
        assert sum(1 for n in per_window if n) >= 2, "the mounts did not span a window boundary"
        assert done == [300]
        assert sum(per_window) == 300
        assert decoding.total(totals.histograms[("mount_ns", "ramfs")]) == 300


class TestRefusedProgram:
    def test_when_one_script_is_refused_the_others_run_in_programs_of_their_own(
        self, bpftrace: str, tmp_path: Path
    ) -> None:
        good = specs.load(specs.scripts_dir() / "mount_latency.yaml")  # type: ignore[operator]
        script = tmp_path / "refused.bt"
        script.write_text(
            "kprobe:burstguard_no_such_function { @refused_ns = hist(1); }\n"
            'interval:s:5 { print(@refused_ns); printf("burstguard:window\\n"); }\n'
        )
        bad = dataclasses.replace(good, name="refused", script_path=script)
        runner = running.Runner(
            (choosing.Choice(good, True, "supported"), choosing.Choice(bad, True, "supported"))
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                states = {s.name: s for s in runner.statuses()}
                if (
                    states["mount_latency"].state == "running"
                    and states["refused"].state == "failed"
                ):
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.3)
            reason = runner.signals(time.monotonic()).degraded_reason
            pids = runner.pids()
        finally:
            runner.stop()
        assert len(pids) == 2
        assert reason.startswith("refused: bpftrace exited"), reason
        assert "mount_latency" not in reason


class TestFootprint:
    def test_the_agent_and_its_one_bpftrace_process_are_printed_and_stay_under_100_mib(
        self, bpftrace: str
    ) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", FOOTPRINT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            started = json.loads(child.stdout.readline())
            time.sleep(6)  # past the first window, at 4 Hz
            # the lowest of a few readings 2 s apart: another bpftrace compiling on this
            # machine shares LLVM pages for a moment, and those are handed back a window later
            readings = []
            for _ in range(6):
                agent = memory_kib(child.pid)
                kids = [memory_kib(p) for p in started["pids"]]
                readings.append((agent[0] + sum(r for r, _ in kids), agent, kids))
                time.sleep(2)
            _, (agent_rss, agent_pss), bpf = min(readings)
        finally:
            child.stdin.write("\n")
            child.stdin.close()
            child.wait(timeout=30)
        bpf_rss, bpf_pss = sum(r for r, _ in bpf), sum(p for _, p in bpf)
        print(
            f"agent RSS {agent_rss / 1024:.1f} MiB PSS {agent_pss / 1024:.1f} MiB; "
            f"{len(bpf)} bpftrace process(es) RSS {bpf_rss / 1024:.1f} MiB "
            f"PSS {bpf_pss / 1024:.1f} MiB (compiler pages handed back: "
            f"{started['trimmed'] / MIB:.0f} MiB advised); "
            f"total RSS {(agent_rss + bpf_rss) / 1024:.1f} MiB"
        )
        assert started["statuses"].count("running") >= 1
        assert len(bpf) == 1
        assert agent_rss + bpf_rss <= 100 * 1024
