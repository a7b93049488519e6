"""The BPF side on this machine: one bpftrace process, cumulative windows, its memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from burstguard.bpf import decoding
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
trimmed = runner.program.trimmed if runner.program else None
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


def ramfs_mounts(count: int, spacing_s: float) -> None:
    base = Path(tempfile.mkdtemp(prefix="bg-ramfs-"))
    try:
        for _ in range(count):
            if workloads._libc.mount(b"none", str(base).encode(), b"ramfs", 0, None) != 0:
                raise OSError(f"mount ramfs: {os.strerror(workloads.ctypes.get_errno())}")
            workloads._libc.umount2(str(base).encode(), 0)
            time.sleep(spacing_s)
    finally:
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
            program = runner.program
            assert program is not None
            deadline = time.monotonic() + 60
            while program.status("mount_latency").state != "running":
                assert time.monotonic() < deadline, runner.statuses()
                time.sleep(0.2)
            windows: dict[int, decoding.Window | None] = {}
            mounts = threading.Thread(target=ramfs_mounts, args=(300, 0.04), daemon=True)
            first = program.status("mount_latency").windows
            last_needed: int | None = None  # one window after the last mount
            mounts.start()
            while last_needed is None or max(windows, default=0) < last_needed:
                n = program.status("mount_latency").windows
                if n > first and n not in windows:
                    windows[n] = program.latest("mount_latency")[0]
                if last_needed is None and not mounts.is_alive():
                    last_needed = n + 1
                assert time.monotonic() < deadline + 60, "no window after the mounts"
                time.sleep(0.05)
            totals = runner.totals()["mount_latency"]
        finally:
            runner.stop()
        assert sorted(windows) == list(range(first + 1, max(windows) + 1)), "a window was missed"
        per_window = [ramfs_count(w) for _, w in sorted(windows.items())]
        print(f"ramfs mounts per window: {per_window}")
        assert sum(1 for n in per_window if n) >= 2, "the mounts did not span a window boundary"
        assert sum(per_window) == 300
        assert decoding.total(totals.histograms[("mount_ns", "ramfs")]) == 300


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
            time.sleep(8)  # past the first windows, at 4 Hz
            agent_rss, agent_pss = memory_kib(child.pid)
            bpf = [memory_kib(p) for p in started["pids"]]
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
