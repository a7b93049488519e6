"""Operator benchmarks on the real local control plane; prints numbers (not a pytest test).

    .venv/bin/python -m tests.bench.bench_operator [--nodes 100 1000] [--pods 2000]

Figures (goals from the operator issue):
0. the apiserver's ceiling, in the same run and on the same nodes just before figure 1: a
   plain loop of the pacer's release patch (32 in flight), no operator logic; printed with
   the pacer's releases/s, their ratio (goal >= 0.9), and the operator's and apiserver's
   CPU-seconds per 1000 releases (goal: operator < 10 % of the apiserver's);
1. release throughput when nodes have budget, with N kwok nodes (goal >= 500 pods/s) and API
   writes per released pod (goal 1): pods are created gated under a policy that releases
   nothing (releasePerSecond 0.1, burst 1), then the policy is raised to 10000/s (the schema
   maximum) and the time from the first to the last gate removal is measured from the
   operator's release counter; writes come from ``burstguard_operator_api_writes_total``;
2. webhook latency added to pod CREATE at 200 creates/s (goal p99 <= 10 ms): client-side
   create latency with the webhook registered minus without it, plus the apiserver's own
   ``apiserver_admission_webhook_admission_duration_seconds`` and the operator's histogram;
3. operator RSS with 10k gated pods (goal <= 250 MiB), from /proc/<pid>/status.

Set ``BURSTGUARD_TEST_CLUSTER_DIR`` to reuse a running ``burstguard dev-cluster up``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import ssl
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from burstguard.api import names
from burstguard.core import gating
from burstguard.devcluster import binaries
from burstguard.devcluster import cluster as devcluster
from burstguard.k8s import apiclient, webhookconfig
from tests.cluster import operating

RUN_LABEL = "burstguard.bench/run"
POLICIES = f"/apis/{names.GROUP}/{names.VERSION}/{names.POLICY_PLURAL}"


def pod(name: str, run: str, group: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
    }
    if group:
        spec["nodeSelector"] = {"burstguard.bench/group": group}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {RUN_LABEL: run}},
        "spec": spec,
    }


def policy(name: str, run: str, group: str, rate: float, burst: int) -> dict[str, Any]:
    body = operating.burst_policy(
        name,
        pod_labels={RUN_LABEL: run},
        node_labels={"burstguard.bench/group": group},
        pacing={"releasePerSecond": rate, "burst": burst, "maxStartingPerNode": 110},
    )
    return body


async def create_pods(
    api: apiclient.Api, namespace: str, run: str, group: str | None, *, count: int, rate: float
) -> list[float]:
    """Create ``count`` pods at ``rate``/s; return each create's latency, seconds."""
    latencies: list[float] = []
    slots = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with slots:
            started = time.perf_counter()
            await api.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", body=pod(f"p{i:05d}", run, group)
            )
            latencies.append(time.perf_counter() - started)

    tasks = []
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def counter(text: str, family: str, labels: str = "") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(family) and labels in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_quantile(text: str, family: str, q: float, label_filter: str = "") -> float | None:
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(family + "_bucket") and label_filter in line:
            m = re.search(r'le="([^"]+)"', line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                buckets[le] = buckets.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    if not buckets:
        return None
    total = buckets[max(buckets)]
    if total == 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return None


async def gated_count(api: apiclient.Api, namespace: str) -> tuple[int, int]:
    items = (await api.request("GET", f"/api/v1/namespaces/{namespace}/pods"))["items"]
    gated = sum(
        any(g["name"] == names.SCHEDULING_GATE for g in p["spec"].get("schedulingGates") or [])
        for p in items
    )
    return gated, len(items)


CEILING_GATE = "burstguard.bench/ceiling"


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid``, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def apiserver_pid(c: devcluster.Cluster) -> int:
    [health] = [h for h in c.health() if h.name == devcluster.APISERVER]
    return health.pid


async def ceiling(
    api: apiclient.Api, c: devcluster.Cluster, group: str, node_names: list[str], pods: int
) -> dict[str, float]:
    """The apiserver's ceiling: a plain loop of the pacer's release patch, no operator logic.

    Pods no policy selects carry a gate of the benchmark's own; 32 patches in flight (the
    operator's ``--release-concurrency``), each the pacer's shape: test and remove the gate,
    add ``metadata.name In [node]`` as the required node-affinity term.
    """
    ns = await make_namespace(api)
    run = f"ceil-{group}"
    sem = asyncio.Semaphore(50)

    async def make(i: int) -> None:
        body = pod(f"c-{i}", run, group)
        body["spec"]["schedulingGates"] = [{"name": CEILING_GATE}]
        async with sem:
            await api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=body)

    await asyncio.gather(*(make(i) for i in range(pods)))
    slots = asyncio.Semaphore(32)
    pin = {"key": "metadata.name", "operator": "In", "values": []}

    async def release(i: int) -> None:
        node = node_names[i % len(node_names)]
        ops = [
            {"op": "test", "path": "/spec/schedulingGates/0", "value": {"name": CEILING_GATE}},
            {"op": "remove", "path": "/spec/schedulingGates/0"},
            *gating.require_ops(gating.affinity_shape({}), {**pin, "values": [node]}, field=True),
        ]
        async with slots:
            await api.request(
                "PATCH",
                f"/api/v1/namespaces/{ns}/pods/c-{i}",
                body=ops,
                content_type=apiclient.JSON_PATCH,
            )

    apiserver = apiserver_pid(c)
    cpu0 = cpu_s(apiserver)
    t0 = time.perf_counter()
    await asyncio.gather(*(release(i) for i in range(pods)))
    span = time.perf_counter() - t0
    apiserver_cpu = cpu_s(apiserver) - cpu0
    await api.request("DELETE", f"/api/v1/namespaces/{ns}")
    return {
        "pods": pods,
        "seconds": span,
        "patches_per_second": pods / span,
        "apiserver_cpu_s_per_1000": apiserver_cpu / pods * 1000,
    }


async def make_namespace(api: apiclient.Api) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    return name


async def throughput(
    api: apiclient.Api, op: operating.OperatorProcess, c: devcluster.Cluster, nodes: int, pods: int
) -> dict[str, float]:
    group = f"n{nodes}-{uuid.uuid4().hex[:6]}"
    c.create_nodes(
        nodes,
        prefix=f"bench-{group}-",
        labels={"burstguard.bench/group": group},
        pods=250,
        wait_s=900,  # 1000 kwok nodes took longer than a minute on a loaded machine
    )
    body = {
        "metadata": {
            "annotations": {
                names.SUMMARY_ANNOTATION: operating.summary(
                    512 * operating.GI, at=time.time() + 3600
                )
            }
        }
    }
    node_names = [f"bench-{group}-{i}" for i in range(nodes)]
    await asyncio.gather(
        *(
            api.request(
                "PATCH", f"/api/v1/nodes/{n}", body=body, content_type=apiclient.MERGE_PATCH
            )
            for n in node_names
        )
    )
    ceil = await ceiling(api, c, group, node_names, pods)
    print(f"   ceiling (plain patch loop, 32 in flight): {ceil}", flush=True)
    ns = await make_namespace(api)
    run = f"tp-{group}"
    await api.request("POST", POLICIES, body=policy(run, run, group, 0.1, 1))
    await asyncio.sleep(3)
    await create_pods(api, ns, run, group, count=pods, rate=400)
    while (await gated_count(api, ns))[1] < pods:
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # let the operator's watch catch up
    waiting = (await gated_count(api, ns))[0]
    before = op.metrics()
    family, selector = "burstguard_pod_releases_total", f'policy="{run}"'
    released_before = counter(before, family, selector)
    writes_before = counter(before, "burstguard_operator_api_writes_total")
    releases_before = counter(before, "burstguard_operator_api_writes_total", 'kind="release"')
    assert op.proc is not None
    apiserver = apiserver_pid(c)
    op_cpu0, api_cpu0 = cpu_s(op.proc.pid), cpu_s(apiserver)
    t0 = time.perf_counter()
    await api.request(
        "PATCH",
        f"{POLICIES}/{run}",
        body={"spec": {"pacing": {"releasePerSecond": 10000, "burst": 10000}}},
        content_type=apiclient.MERGE_PATCH,
    )
    # Count releases from the operator's own counter and stop when its gated gauge reaches
    # 0 (cheap to poll; listing 2000 pods at 20 Hz would load the apiserver the releases
    # compete with). The end is the last poll at which the counter moved, so a release
    # that slipped out before ``before`` cannot hold the loop to its timeout.
    first_release = None
    done = t0
    last_seen = -1.0
    while time.perf_counter() - t0 < 300:
        text = op.metrics()
        released_now = counter(text, family, selector) - released_before
        now = time.perf_counter()
        if first_release is None and released_now >= 1:
            first_release = now
        if released_now != last_seen:
            last_seen, done = released_now, now
        if counter(text, "burstguard_gated_pods", selector) == 0 and released_now >= 1:
            break
        await asyncio.sleep(0.1)
    op_cpu, api_cpu = cpu_s(op.proc.pid) - op_cpu0, cpu_s(apiserver) - api_cpu0
    after = op.metrics()
    released = int(counter(after, family, selector) - released_before)
    writes = counter(after, "burstguard_operator_api_writes_total") - writes_before
    release_writes = (
        counter(after, "burstguard_operator_api_writes_total", 'kind="release"') - releases_before
    )
    span = done - (first_release or t0)
    rate = released / span if span > 0 else 0.0
    per_1000 = 1000 / released if released else 0.0
    print(
        f"   ceiling {ceil['patches_per_second']:.0f} patches/s, pacer {rate:.0f} releases/s,"
        f" ratio {rate / ceil['patches_per_second']:.2f} (goal >= 0.9);"
        f" operator {op_cpu * per_1000:.2f} CPU-s per 1000 releases, apiserver"
        f" {api_cpu * per_1000:.2f} (ceiling loop {ceil['apiserver_cpu_s_per_1000']:.2f}),"
        f" operator/apiserver {op_cpu / api_cpu if api_cpu else 0:.1%} (goal < 10 %);"
        f" load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    await api.request("DELETE", f"{POLICIES}/{run}")
    await api.request("DELETE", f"/api/v1/namespaces/{ns}")
    return {
        "nodes": nodes,
        "pods": released,
        "gated_when_raised": waiting,
        "seconds_first_to_last": span,
        "seconds_from_policy_patch": done - t0,
        "pods_per_second": rate,
        "ceiling_patches_per_second": ceil["patches_per_second"],
        "ratio_to_ceiling": rate / ceil["patches_per_second"],
        "operator_cpu_s_per_1000_releases": op_cpu * per_1000,
        "apiserver_cpu_s_per_1000_releases": api_cpu * per_1000,
        "api_writes_per_released_pod": writes / released if released else 0.0,
        "release_patches_per_released_pod": release_writes / released if released else 0.0,
    }


async def webhook_latency(
    api: apiclient.Api, op: operating.OperatorProcess, c: devcluster.Cluster, count: int
) -> dict[str, float | None]:
    ns = await make_namespace(api)
    run = f"wh-{uuid.uuid4().hex[:6]}"
    group = f"none-{run}"  # the policy guards no node; pods stay gated (not scheduled)
    await api.request("POST", POLICIES, body=policy(run, run, group, 0.1, 1))
    await asyncio.sleep(3)
    with_hook = await create_pods(api, ns, run, group, count=count, rate=200)
    metrics_text = await raw_metrics(api)
    gated, total = await gated_count(api, ns)
    # Same load without the webhook configuration (pods created ungated).
    await webhookconfig.remove(api)
    await asyncio.sleep(1)
    ns2 = await make_namespace(api)
    without = await create_pods(api, ns2, run, "unschedulable-" + group, count=count, rate=200)
    operator_text = op.metrics()  # before the restart resets the operator's counters
    op.stop()
    op.start()  # re-registers the webhook
    await api.request("DELETE", f"{POLICIES}/{run}")
    for n in (ns, ns2):
        await api.request("DELETE", f"/api/v1/namespaces/{n}")
    direct = await direct_webhook(op, run, count)
    return {
        "creates": count,
        "gated_of_created": gated / total if total else 0.0,
        "create_p50_ms_with": pct(with_hook, 0.5) * 1000,
        "create_p99_ms_with": pct(with_hook, 0.99) * 1000,
        "create_p50_ms_without": pct(without, 0.5) * 1000,
        "create_p99_ms_without": pct(without, 0.99) * 1000,
        "added_p50_ms": (pct(with_hook, 0.5) - pct(without, 0.5)) * 1000,
        "added_p99_ms": (pct(with_hook, 0.99) - pct(without, 0.99)) * 1000,
        "apiserver_webhook_p99_le_ms": _ms(
            histogram_quantile(
                metrics_text,
                "apiserver_admission_webhook_admission_duration_seconds",
                0.99,
                f'name="{webhookconfig.WEBHOOK_NAME}"',
            )
        ),
        "operator_handler_p99_le_ms": _ms(
            histogram_quantile(operator_text, "burstguard_webhook_duration_seconds", 0.99)
        ),
        "mean_create_ms_with": statistics.mean(with_hook) * 1000,
        "direct_round_trip_p50_ms": pct(direct, 0.5) * 1000,
        "direct_round_trip_p99_ms": pct(direct, 0.99) * 1000,
    }


async def direct_webhook(op: operating.OperatorProcess, run: str, count: int) -> list[float]:
    """AdmissionReviews posted straight to the webhook at 200/s over TLS (no apiserver)."""
    context = ssl.create_default_context(cafile=str(op.workdir / "certs" / "ca.pem"))
    url = f"https://127.0.0.1:{op.webhook_port}/mutate-pods"
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=16)) as s:

        async def one(i: int) -> None:
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": str(i),
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "operation": "CREATE",
                    "namespace": "bench",
                    "object": pod(f"d{i}", run, None),
                },
            }
            started = time.perf_counter()
            async with s.post(url, data=json.dumps(review)) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)

        tasks = []
        t0 = time.perf_counter()
        for i in range(count):
            delay = t0 + i / 200 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000


async def raw_metrics(api: apiclient.Api) -> str:
    """The apiserver's /metrics text (not JSON, so read it raw)."""
    params = await api._client.param_serialize(  # the one non-JSON read in this script
        method="GET",
        resource_path="/metrics",
        header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"],
    )
    response = await api._client.call_api(*params, _request_timeout=30)
    return str((await response.read()).decode())


async def rss(api: apiclient.Api, op: operating.OperatorProcess, count: int) -> dict[str, float]:
    ns = await make_namespace(api)
    run = f"rss-{uuid.uuid4().hex[:6]}"
    await api.request("POST", POLICIES, body=policy(run, run, f"none-{run}", 0.1, 1))
    await asyncio.sleep(3)
    t0 = time.perf_counter()
    await create_pods(api, ns, run, f"none-{run}", count=count, rate=500)
    created_s = time.perf_counter() - t0
    for _ in range(120):
        text = op.metrics()
        if counter(text, "burstguard_gated_pods", f'policy="{run}"') >= count - 5:
            break
        await asyncio.sleep(1)
    assert op.proc is not None
    status = Path(f"/proc/{op.proc.pid}/status").read_text()
    vmrss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    gated = counter(op.metrics(), "burstguard_gated_pods", f'policy="{run}"')
    await api.request("DELETE", f"{POLICIES}/{run}")
    await api.request("DELETE", f"/api/v1/namespaces/{ns}")
    return {"gated_pods_seen": gated, "rss_mib": vmrss_kib / 1024, "create_seconds": created_s}


async def main_async(
    args: argparse.Namespace, c: devcluster.Cluster, op: operating.OperatorProcess
) -> None:
    api = await apiclient.connect(str(c.kubeconfig_path))
    try:
        if args.webhook_pods:
            print("== webhook latency at 200 creates/s", flush=True)
            print(await webhook_latency(api, op, c, args.webhook_pods), flush=True)
        for n in (n for n in args.nodes if n > 0):  # --nodes 0 skips the throughput figure
            print(f"== release throughput, {n} nodes, {args.pods} pods", flush=True)
            print(await throughput(api, op, c, n, args.pods), flush=True)
        print(f"== operator RSS with {args.rss_pods} gated pods", flush=True)
        print(await rss(api, op, args.rss_pods), flush=True)
    finally:
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--webhook-pods", type=int, default=2000)
    parser.add_argument("--rss-pods", type=int, default=10000)
    args = parser.parse_args()
    reuse = os.environ.get("BURSTGUARD_TEST_CLUSTER_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        c = (
            devcluster.Cluster.attach(reuse)
            if reuse
            else devcluster.Cluster.start(Path(tmp) / "cluster", bins=binaries.locate())
        )
        op = operating.OperatorProcess(c.kubeconfig_path, Path(tmp))
        try:
            op.start()
            asyncio.run(main_async(args, c, op))
        finally:
            op.stop()
            print(f"operator log: {op.log_path} (kept until exit)\n{op.log_tail(15)}")
            if not reuse:
                with contextlib.suppress(Exception):
                    c.stop()


if __name__ == "__main__":
    main()
