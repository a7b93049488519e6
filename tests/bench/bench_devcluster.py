"""Local control plane: warm start to ready, stop time, memory of the running processes.

Starts the cluster ``--runs`` times in a temporary directory (binaries already built, page
cache warm after the first run) and prints, per run, seconds to ready (every health endpoint
and the default ServiceAccount), seconds to create 3 kwok nodes and see them schedulable,
seconds to stop; then, on the last run, the RSS of each process (``VmRSS`` from
``/proc/<pid>/status``) idle and after a Job of 50 pods completed.

Run: ``.venv/bin/python tests/bench/bench_devcluster.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from burstguard.devcluster import cluster, supervising


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 if gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1])


def print_rss(title: str, c: cluster.Cluster) -> None:
    per = {r.name: rss_kib(r.pid) for r in c.records if supervising.alive(r)}
    total = sum(per.values())
    parts = ", ".join(f"{name} {kib / 1024:.0f}" for name, kib in per.items())
    print(f"RSS {title}: total {total / 1024:.0f} MiB ({parts} MiB)")


def run_job(c: cluster.Cluster, pods: int) -> float:
    """Create a Job of ``pods`` pods in namespace default; seconds until it is Complete."""
    client = c.client()
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bench"},
        "spec": {
            "completions": pods,
            "parallelism": pods,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "pause"}],
                }
            },
        },
    }
    began = time.monotonic()
    client.json("POST", "/apis/batch/v1/namespaces/default/jobs", job)
    while True:
        status = client.json("GET", "/apis/batch/v1/namespaces/default/jobs/bench")["status"]
        if status.get("succeeded", 0) == pods:
            return time.monotonic() - began
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ready, stops = [], []
    with tempfile.TemporaryDirectory(prefix="bench-devcluster-") as tmp:
        for i in range(args.runs):
            c = cluster.Cluster.start(Path(tmp) / "c")
            t0 = time.monotonic()
            c.create_nodes(3)
            nodes_s = time.monotonic() - t0
            last = i == args.runs - 1
            if last:
                time.sleep(10)
                print_rss("idle, 3 kwok nodes", c)
                job_s = run_job(c, 50)
                print(f"Job of 50 pods complete in {job_s:.1f} s")
                print_rss("after the 50-pod Job", c)
            t0 = time.monotonic()
            killed = c.stop()
            stop_s = time.monotonic() - t0
            ready.append(c.ready_seconds)
            stops.append(stop_s)
            print(
                f"run {i + 1}: ready {c.ready_seconds:.1f} s, 3 nodes schedulable {nodes_s:.1f} s, "
                f"stop {stop_s:.1f} s{' killed ' + ','.join(killed) if killed else ''}"
            )
    print(
        f"ready: median {statistics.median(ready):.1f} s (min {min(ready):.1f}, "
        f"max {max(ready):.1f}); stop: median {statistics.median(stops):.1f} s"
    )


if __name__ == "__main__":
    main()
