"""Benchmark of the node agent on this machine (run as root; not collected by pytest).

Prints:
1. CPU (% of one core) and RSS of the agent at ``--hz`` (default 4) with the tracepoint
   bpftrace scripts running, over ``--seconds`` of an idle node: the Python process and the
   bpftrace children separately (BPF program time runs in the traced tasks and is not
   attributable here; reference/host-6.18 found no measurable overhead on a mount loop).
2. Reaction time under real memory pressure: the node's close threshold is set 1.5 GiB under
   its current headroom, an anonymous hog then allocates past it, an independent 200 Hz
   poller (separate process, /proc/zoneinfo) stamps the moment headroom actually crossed the
   threshold, and the agent stamps the moment its Closed summary was written. With
   ``--kubeconfig`` and ``--node`` the write goes to that Node of a real API server (a kwok
   node of ``burstguard dev-cluster``); without, to nowhere (the number then excludes the
   API round trip, and the output says so).

    sudo .venv/bin/python tests/bench/bench_agent.py [--seconds 60] [--kubeconfig K --node N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from burstguard.agent import sampling
from burstguard.cli import agent as cli_agent
from burstguard.core import headroom
from burstguard.k8s import nodes
from burstguard.procfs import snapshot

GIB = 1024**3
CLK_TCK = os.sysconf("SC_CLK_TCK")

POLLER = """
import sys, time
sys.path.insert(0, sys.argv[3])
from burstguard.core import headroom
from burstguard.procfs import snapshot
threshold = int(sys.argv[1]); deadline = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < deadline:
    t = time.monotonic()
    if headroom.assess(snapshot.read("/proc", t)).headroom_bytes < threshold:
        print(t, flush=True)
        break
    time.sleep(0.005)
"""

HOG = """
import mmap, sys, time
n = int(sys.argv[1])
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
block = b"\\x01" * (16 << 20)
for i in range(0, n - len(block) + 1, len(block)):
    m[i:i + len(block)] = block
print("done", flush=True)
time.sleep(30)
"""


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_pss_mib(pid: int) -> float:
    """Proportional set size (shared pages split among their users), /proc/<pid>/smaps_rollup."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class StampingWriter:
    """Wraps the real writer (or none) and stamps when a Closed summary has been written."""

    def __init__(self, inner: nodes.NodeWriter | None) -> None:
        self.inner = inner
        self.closed_written_at: float | None = None

    def publish(self, summary_json: str, condition: nodes.Condition) -> None:
        if self.inner is not None:
            self.inner.publish(summary_json, condition)
        if '"state":"Closed"' in summary_json and self.closed_written_at is None:
            self.closed_written_at = time.monotonic()


def measure_cost(hz: float, seconds: float) -> dict[str, float | int | str]:
    runner = cli_agent.start_bpf("/proc")
    agent = sampling.Agent(sampling.Config(node_name="bench", hz=hz), runner=runner)
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    deadline = time.monotonic() + 60
    while any(s.state == "starting" for s in runner.statuses()) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(6)  # past bpftrace start-up (LLVM compile) and the first window
    children = list(runner.pids())
    me = os.getpid()
    cpu0 = proc_cpu_s(me)
    kids0 = sum(proc_cpu_s(p) for p in children)
    samples0 = agent.samples
    t0 = time.monotonic()
    rss: list[float] = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        rss.append(proc_rss_mib(me))
    wall = time.monotonic() - t0
    cpu = proc_cpu_s(me) - cpu0
    kids = sum(proc_cpu_s(p) for p in children) - kids0
    kid_rss = sum(proc_rss_mib(p) for p in children)
    kid_pss = sum(proc_pss_mib(p) for p in children)
    agent_pss = proc_pss_mib(me)
    statuses = {s.name: s.state for s in runner.statuses()}
    stop.set()
    loop.join(timeout=5)
    agent.stop()
    return {
        "hz": hz,
        "seconds": round(wall, 1),
        "samples": agent.samples - samples0,
        "agent_cpu_percent_of_core": round(100 * cpu / wall, 2),
        "bpftrace_cpu_percent_of_core": round(100 * kids / wall, 2),
        "agent_rss_mib_median": round(statistics.median(rss), 1),
        "agent_rss_mib_max": round(max(rss), 1),
        "agent_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "agent_pss_mib": round(agent_pss, 1),
        "bpftrace_rss_mib_total": round(kid_rss, 1),
        "bpftrace_pss_mib_total": round(kid_pss, 1),
        "agent_plus_bpftrace_rss_mib": round(rss[-1] + kid_rss, 1),
        "bpftrace_processes": len(children),
        "scripts": json.dumps(statuses, sort_keys=True),
    }


def measure_reaction(hz: float, kubeconfig: str | None, node: str | None) -> dict[str, float | str]:
    now_headroom = headroom.assess(snapshot.read("/proc", time.monotonic())).headroom_bytes
    threshold = now_headroom - int(1.5 * GIB)
    if threshold < GIB:
        return {"reaction": "skipped: less than 2.5 GiB headroom on this node"}
    inner = nodes.NodeWriter(nodes.connect(kubeconfig), node) if kubeconfig and node else None
    writer = StampingWriter(inner)
    config = sampling.Config(
        node_name=node or "bench",
        hz=hz,
        close_below_bytes=threshold,
        bpf=False,
        reopen_hold_s=3600,
    )
    agent = sampling.Agent(config, writer=writer)  # type: ignore[arg-type]
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    time.sleep(2)  # Open published first
    repo = str(Path(__file__).resolve().parents[2])
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, str(threshold), "60", repo],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller.stdout is not None
    poller.stdout.readline()
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(int(2.5 * GIB))], stdout=subprocess.PIPE)
    try:
        crossed_line = poller.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while writer.closed_written_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hog.kill()
        hog.wait()
        poller.kill()
        stop.set()
        loop.join(timeout=5)
        agent.stop()
    if not crossed_line or writer.closed_written_at is None:
        return {"reaction": f"no crossing/publication seen (crossed={crossed_line!r})"}
    crossed = float(crossed_line)
    return {
        "reaction_ms": round(1000 * (writer.closed_written_at - crossed), 1),
        "published_to": f"Node {node} via {kubeconfig}"
        if inner
        else "no API server (write skipped)",
        "threshold_gib": round(threshold / GIB, 2),
        "closed_reasons": ",".join(agent.machine.reasons),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hz", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--node")
    parser.add_argument("--reactions", type=int, default=3)
    parser.add_argument("--no-cost", action="store_true", help="only measure reaction time")
    args = parser.parse_args()
    if not args.no_cost:
        print(json.dumps({"cost": measure_cost(args.hz, args.seconds)}, indent=2))
    for i in range(args.reactions):
        print(
            json.dumps({f"reaction_{i + 1}": measure_reaction(args.hz, args.kubeconfig, args.node)})
        )
        time.sleep(3)


if __name__ == "__main__":
    main()
