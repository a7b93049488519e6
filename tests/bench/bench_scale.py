"""Scale benchmark: a 10k-pod burst onto 1000 SIMULATED kwok nodes; prints numbers.

    .venv/bin/python -m tests.bench.bench_scale [--nodes 1000] [--pods 10000] [--rate 500]

A fresh local control plane whose kwok runs the simulated stages (simulation.stages), 1000
kwok nodes (4 cores, 16 GiB each) played by the simulated fleet (node-memory model, in this
process), the operator as a subprocess with an Enforce policy; then ``--pods`` paced pods are
created at ``--rate``/s (the burst) and followed to the end. Printed:

* time from the first create until every pod is released (gate removed) and until every pod
  has started, and the release throughput (first to last release);
* API writes per pod: the operator's ``burstguard_operator_api_writes_total`` (and its
  release patches alone), and the simulated fleet's writes (summaries, conditions, start
  marks, acknowledgements) per pod;
* webhook latency: client-side pod CREATE p50/p99 during the burst, the apiserver's
  ``apiserver_admission_webhook_admission_duration_seconds`` p99 bucket and the operator's
  handler p99 bucket;
* operator CPU (user+system seconds over the burst, /proc/<pid>/stat) and RSS (peak seen);
* the simulated fleet's publish rate against the apiserver's load: summaries/s and
  writes/s from the fleet, the apiserver's request rate (``apiserver_request_total``) and
  the CPU of kube-apiserver and etcd over the burst.

Memory numbers of the nodes are MODELLED (simulated fleet), the rest is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from burstguard.devcluster import binaries
from burstguard.devcluster import cluster as devcluster
from burstguard.k8s import apiclient, watching, workloads
from burstguard.simulation import nodemodel, running, stages
from tests.bench import bench_operator
from tests.cluster import operating

CLK_TCK = os.sysconf("SC_CLK_TCK")
latency_log: list[float] = []
create_errors: list[str] = []
"""Create latencies of the running burst, seconds (kept when the burst is cut short)."""


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match.group(1)) / 1024 if match else 0.0


def pod_body(name: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {workloads.PACE_LABEL: "true"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "work",
                    "image": "registry.local/batch-worker:1",
                    "resources": {"requests": {"cpu": "10m", "memory": memory}},
                }
            ],
        },
    }


async def create_pods(
    api: apiclient.Api, namespace: str, count: int, rate: float, *, memory: str, concurrency: int
) -> list[float]:
    """Create ``count`` pods at ``rate``/s (``concurrency`` in flight); return latencies, s."""
    latencies = latency_log
    latencies.clear()
    slots = asyncio.Semaphore(concurrency)
    began = time.perf_counter()

    async def one(i: int) -> None:
        async with slots:
            t = time.perf_counter()
            try:
                await api.request(
                    "POST", f"/api/v1/namespaces/{namespace}/pods", body=pod_body(f"p{i}", memory)
                )
            except (apiclient.ApiError, TimeoutError) as exc:
                create_errors.append(str(exc)[:200])  # an overloaded apiserver; counted
                return
            latencies.append(time.perf_counter() - t)

    tasks = []
    for i in range(count):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


async def burst(args: argparse.Namespace, c: devcluster.Cluster, tmp: Path) -> dict[str, Any]:
    t_nodes = time.perf_counter()
    names = c.create_nodes(
        args.nodes,
        prefix="sim-",
        cpu="4",
        memory="16Gi",
        pods=110,
        labels={running.SIMULATED_LABEL: "true"},
        wait_s=600,
    )
    nodes_s = time.perf_counter() - t_nodes
    print(f"   {len(names)} kwok nodes ready in {nodes_s:.1f} s", flush=True)
    # Headroom for the whole burst (10 pods x 256 MiB per node) plus margin: this benchmark
    # measures the control plane; the demo shows the memory-limited case.
    profile = nodemodel.FleetProfile(headroom_min_bytes=3 * 2**30, headroom_max_bytes=6 * 2**30)
    model = nodemodel.fleet(
        args.nodes, profile, random.Random(args.seed), time.time(), prefix="sim-"
    )
    api = await apiclient.connect(str(c.kubeconfig_path))
    fleet = running.Fleet(
        api, model, running.Config(tick_s=0.5, record_every_s=None, seed=args.seed)
    )
    stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(stop))
    op = operating.OperatorProcess(c.kubeconfig_path, tmp, "--namespace=scale")
    try:
        await asyncio.get_running_loop().run_in_executor(None, op.start)
        policy = operating.burst_policy(
            "scale",
            pod_labels={workloads.PACE_LABEL: "true"},
            node_labels={running.SIMULATED_LABEL: "true"},
            pacing={
                "maxStartingPerNode": 4,
                "maxStartingPerCore": 1.0,
                "releasePerSecond": args.release_rate,
                "burst": args.release_rate,
                "podStartupMemory": args.pod_memory,
            },
            headroom={"reopenHold": "2s", "staleAfter": "60s"},
        )
        await workloads.apply_policy(api, policy)
        await workloads.create_namespace(api, "scale")
        await asyncio.sleep(max(3.0, args.nodes / 200))  # first summaries of every node
        counts = workloads.PodCounts("scale")
        informer = asyncio.create_task(
            watching.Informer(api, "/api/v1/namespaces/scale/pods", counts).run()
        )
        assert op.proc is not None
        apiserver_pid = _pid(c, devcluster.APISERVER)
        etcd_pid = _pid(c, devcluster.ETCD)
        m0 = op.metrics()
        a0 = await bench_operator.raw_metrics(api)
        cpu0 = {
            "operator": cpu_seconds(op.proc.pid),
            "apiserver": cpu_seconds(apiserver_pid),
            "etcd": cpu_seconds(etcd_pid),
            "fleet+bench": time.process_time(),
        }
        stats0 = {
            k: getattr(fleet.stats, k) for k in ("publishes", "conditions", "start_marks", "acks")
        }
        t0 = time.perf_counter()
        mono0 = time.monotonic()
        peak_rss = rss_mib(op.proc.pid)
        creator = asyncio.create_task(
            create_pods(
                api,
                "scale",
                args.pods,
                args.rate,
                memory=args.pod_memory,
                concurrency=args.concurrency,
            )
        )
        all_released = all_started = None
        while True:
            await asyncio.sleep(0.5)
            peak_rss = max(peak_rss, rss_mib(op.proc.pid))
            elapsed = time.perf_counter() - t0
            released = len(counts.released_at)
            started = len(counts.started_at)
            if int(elapsed * 2) % 10 == 0:  # every 5 s
                print(
                    f"   {elapsed:6.1f}s created {len(counts.pods)} released {released} "
                    f"started {started} starting {fleet.starting()}",
                    flush=True,
                )
            if all_released is None and released >= args.pods:
                all_released = elapsed
            if started >= args.pods:
                all_started = elapsed
                break
            if elapsed > args.timeout:
                break
        if all_started is None:
            creator.cancel()  # timed out: report what was measured, do not wait for the rest
            with contextlib.suppress(asyncio.CancelledError):
                await creator
            latencies = list(latency_log)
        else:
            latencies = await creator
        duration = time.perf_counter() - t0
        m1 = op.metrics()
        a1 = await bench_operator.raw_metrics(api)
        cpu1 = {
            "operator": cpu_seconds(op.proc.pid),
            "apiserver": cpu_seconds(apiserver_pid),
            "etcd": cpu_seconds(etcd_pid),
            "fleet+bench": time.process_time(),
        }
        informer.cancel()
        releases = sorted(t - mono0 for t in counts.released_at.values())
        span = (releases[-1] - releases[0]) if len(releases) > 1 else 0.0
        writes = bench_operator.counter(m1, "burstguard_operator_api_writes_total") - (
            bench_operator.counter(m0, "burstguard_operator_api_writes_total")
        )
        release_writes = bench_operator.counter(
            m1, "burstguard_operator_api_writes_total", 'kind="release"'
        ) - bench_operator.counter(m0, "burstguard_operator_api_writes_total", 'kind="release"')
        by_kind = {
            kind: bench_operator.counter(
                m1, "burstguard_operator_api_writes_total", f'kind="{kind}"'
            )
            - bench_operator.counter(m0, "burstguard_operator_api_writes_total", f'kind="{kind}"')
            for kind in sorted(set(re.findall(r'api_writes_total\{[^}]*kind="([^"]+)"', m1)))
        }
        released_pods = max(len(counts.released_at), 1)
        fleet_writes = sum(
            getattr(fleet.stats, k) - stats0[k]
            for k in ("publishes", "conditions", "start_marks", "acks")
        )
        fleet_publishes = fleet.stats.publishes - stats0["publishes"]
        requests = bench_operator.counter(a1, "apiserver_request_total") - bench_operator.counter(
            a0, "apiserver_request_total"
        )
        outcome = fleet.outcome()
        return {
            "nodes": args.nodes,
            "pods": args.pods,
            "create_rate_per_s": args.rate,
            "seconds_until_all_released": all_released,
            "seconds_until_all_started": all_started,
            "release_throughput_pods_per_s": (len(releases) / span) if span > 0 else None,
            "operator_api_writes_per_pod": writes / args.pods,
            "operator_release_patches_per_pod": release_writes / args.pods,
            "fleet_api_writes_per_pod": fleet_writes / args.pods,
            # per pod actually released: the same when the burst completes, and the honest
            # figure when the run is cut short at --timeout
            "released_pods": len(counts.released_at),
            "operator_api_writes_per_released_pod": writes / released_pods,
            "operator_release_patches_per_released_pod": release_writes / released_pods,
            "operator_api_writes_by_kind": json.dumps(by_kind, sort_keys=True),
            "webhook_create_p50_ms": bench_operator.pct(latencies, 0.5) * 1000,
            "webhook_create_p99_ms": bench_operator.pct(latencies, 0.99) * 1000,
            "apiserver_webhook_p99_le_ms": _ms(
                bench_operator.histogram_quantile(
                    a1, "apiserver_admission_webhook_admission_duration_seconds", 0.99
                )
            ),
            "operator_handler_p99_le_ms": _ms(
                bench_operator.histogram_quantile(m1, "burstguard_webhook_duration_seconds", 0.99)
            ),
            "operator_cpu_seconds": cpu1["operator"] - cpu0["operator"],
            "operator_cpu_share_of_one_core": (cpu1["operator"] - cpu0["operator"]) / duration,
            "operator_rss_mib_peak": peak_rss,
            "fleet_summaries_per_s": fleet_publishes / duration,
            "fleet_writes_per_s": fleet_writes / duration,
            "apiserver_requests_per_s": requests / duration,
            "apiserver_cpu_share_of_one_core": (cpu1["apiserver"] - cpu0["apiserver"]) / duration,
            "etcd_cpu_share_of_one_core": (cpu1["etcd"] - cpu0["etcd"]) / duration,
            "fleet_and_bench_cpu_share_of_one_core": (cpu1["fleet+bench"] - cpu0["fleet+bench"])
            / duration,
            "fleet_write_errors": fleet.stats.errors,
            "create_errors": len(create_errors),
            "modelled_nodes_entered_reclaim": outcome["nodes_entered_reclaim"],
            "modelled_stalls": outcome["stalls"],
            "modelled_max_starting_per_node": outcome["max_starting_per_node"],
            "duration_s": duration,
        }
    finally:
        op.stop()
        stop.set()
        await fleet_task
        await api.close()


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000


def _pid(c: devcluster.Cluster, name: str) -> int:
    return next(r.pid for r in c.records if r.name == name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=500.0, help="pod creates per second")
    parser.add_argument("--release-rate", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=128, help="creates in flight")
    parser.add_argument("--pod-memory", default="256Mi")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        tmp = Path(name)
        bins = stages.staged(binaries.locate(), tmp / "stages", run_ms=600_000)
        print(f"== scale: {args.nodes} simulated nodes, {args.pods} pods", flush=True)
        c = devcluster.Cluster.start(tmp / "cluster", bins=bins)
        try:
            result = asyncio.run(burst(args, c, tmp))
        finally:
            c.stop()
        for key, value in result.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"{key:44} {shown}")
        print(json.dumps({"run": uuid.uuid4().hex[:8], **result}))


if __name__ == "__main__":
    main()
