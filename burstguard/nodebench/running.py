"""Run the interleaved scenarios on one real node and record what each run observed.

For each run index, ``unguarded`` (no policy: nothing is gated), ``guarded`` (an Enforce
policy that sets only mode and selectors, so every other value is the API's default, the
same constants the chart is generated from; the agent as the chart's defaults run it:
``agent.preparation.enabled: true`` with clean page-cache drops allowed) and
``guarded-observe`` (the same policy, the agent only observing: the chart with
``agent.preparation.enabled: false``, its default before the real-node measurements).
``guarded-leadtime`` (bursts announced ahead) is the same Job as a CronJob that fires at the
next cron minute at least ``LEAD_TIME_S`` + 10 s away, under the guarded policy with
``preparation.leadTime``: the node is asked to prepare before any pod exists. Before each
run the page cache is filled to the high watermark and an anonymous hog is started; the run
is aborted when MemAvailable falls under 2 GiB (``memory.Watch``). Each run has its own
namespace, deleted at its end; the hog, operator and agent are stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from burstguard.api import names
from burstguard.api import policy as policy_api
from burstguard.k8s import agentidentity, apiclient, podtimes, watching, workloads
from burstguard.nodebench import memory, processes, results

POLICY_NAME: Final = "bench-node"
START_RETRIES: Final = 5
"""The burst Job's backoffLimit."""
LEAD_TIME_S: Final = 30.0
"""``preparation.leadTime`` of the guarded-leadtime scenario, seconds."""
AGENT_NAMESPACE: Final = "burstguard-bench"
AGENT_SA: Final = "burstguard-agent"
DEPLOY_AGENT: Final = Path(__file__).resolve().parents[2] / "deploy" / "agent"
KSWAPD_WAKES_BT: Final = (
    "tracepoint:vmscan:mm_vmscan_kswapd_wake { @wakes = count(); }"
    " tracepoint:syscalls:sys_enter_mount { @t[tid] = nsecs; }"
    " tracepoint:syscalls:sys_exit_mount /@t[tid]/"
    " { @mount_us = hist((nsecs - @t[tid]) / 1000); delete(@t[tid]); }"
)


@dataclass(frozen=True)
class Config:
    """One benchmark invocation."""

    kubeconfig: Path
    node: str
    out: Path
    runs: int = 3
    pods: int = 80
    pod_memory: str = "256Mi"
    image: str = "localhost/burstguard/workload:v1"
    """The real node's workload image: reads its image files, faults in ``fault_mib``, holds."""
    fault_mib: int = 128
    """MiB each pod faults in. Unpaced, all of a burst's pods can hold their memory at once
    (80 pods on the loaded 2-core host: 67 at once, the last started after 36 s): 80 x 192 MiB
    tripped the 2 GiB MemAvailable stop beside the 2 GiB hog; 80 x 128 MiB (about 11 GiB
    with the runtime's overhead) leaves room on this 24 GiB machine."""
    hold_s: int = 3
    """Seconds each pod holds its memory before it exits."""
    hog_bytes: int = 2 * 2**30
    fill_max_bytes: int = 24 * 2**30
    fill_dir: Path = Path("/var/tmp/burstguard-bench-fill")
    timeout_s: float = 900.0
    scenarios: tuple[str, ...] = results.DEFAULT_SCENARIOS
    keep_fill: bool = False


@dataclass
class Context:
    """What the benchmark started, so everything is stopped at the end."""

    operator: processes.Child | None = None
    agent: processes.Child | None = None
    agent_prepares: bool = False
    agent_kubeconfig: Path | None = None
    notes: list[str] = field(default_factory=list)


def guarded_policy(node: str, lead_time_s: float = 0.0) -> dict[str, Any]:
    """Enforce, selectors only: the defaults of ``api.policy`` for everything else (and
    ``preparation.leadTime`` when ``lead_time_s`` is given)."""
    body: dict[str, Any] = {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": names.POLICY_KIND,
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "mode": "Enforce",
            "pods": {"podSelector": {"matchLabels": {workloads.PACE_LABEL: "true"}}},
            "nodes": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": node}}},
        },
    }
    if lead_time_s > 0:
        body["spec"]["preparation"] = {"leadTime": f"{lead_time_s:g}s"}
    return body


def cron_minute(now: float, lead_time_s: float) -> float:
    """The first whole UTC minute at least ``lead_time_s`` + 10 s after ``now`` (Unix s)."""
    return (int(now + lead_time_s + 10.0) // 60 + 1) * 60.0


def burst_cronjob(cfg: Config, name: str, fire_at: float) -> dict[str, Any]:
    """The burst Job as a CronJob firing once at ``fire_at`` (a whole UTC minute)."""
    job = burst_job(cfg, name)
    at = time.gmtime(fire_at)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": f"{at.tm_min} {at.tm_hour} * * *",
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": job["spec"]},
        },
    }


def burst_job(cfg: Config, name: str) -> dict[str, Any]:
    """The Job: ``cfg.pods`` pods at once on ``cfg.node``, never pulling."""
    job = workloads.burst_job(
        name,
        cfg.pods,
        memory=cfg.pod_memory,
        run_seconds=3,
        image=cfg.image,
        node_selector={"kubernetes.io/hostname": cfg.node},
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicy"] = "Never"
    container["args"] = [str(cfg.fault_mib), str(cfg.hold_s)]
    # A container the runtime fails to start (seen under load: runc "error getting pipe fds")
    # is replaced, not the whole burst failed; such pods are counted apart (results).
    job["spec"]["backoffLimit"] = START_RETRIES
    job["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists"}]
    return job


class KswapdProbe:
    """bpftrace counting kswapd wakes and timing mount(2) during a run (where available)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.reason = ""
        exe = shutil.which("bpftrace")
        if exe is None:
            self.reason = "bpftrace not installed: kswapd_wakes and mount latency not measured"
            return
        self.proc = subprocess.Popen(
            [exe, "-f", "json", "-e", KSWAPD_WAKES_BT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)  # attach

    def stop(self) -> tuple[int | None, dict[str, float] | None]:
        """Stop it (SIGINT by pid prints the maps) and decode wakes and mount quantiles."""
        if self.proc is None:
            return None, None
        self.proc.send_signal(2)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        wakes: int | None = 0
        mount: dict[str, float] | None = None
        for line in out.splitlines():
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                data = msg.get("data") or {}
                if "@wakes" in data:
                    wakes = int(data["@wakes"])
                if "@mount_us" in data and msg.get("type") == "hist":
                    mount = _hist_quantiles(data["@mount_us"])
        if self.proc.returncode not in (0, -2, 130) and not out:
            self.reason = f"bpftrace failed: {err.strip()[:200]}"
            return None, None
        return wakes, mount


def _hist_quantiles(buckets: list[dict[str, Any]]) -> dict[str, float]:
    """p50/p99/max (seconds, bucket upper bounds) of a bpftrace log2 histogram in µs."""
    total = sum(int(b["count"]) for b in buckets)
    out: dict[str, float] = {}
    seen = 0
    for b in buckets:
        seen += int(b["count"])
        upper = float(b.get("max", b.get("min", 0))) / 1e6
        for q, key in ((0.5, "p50"), (0.99, "p99")):
            if key not in out and seen >= q * total:
                out[key] = upper
        out["max"] = upper
    return out


async def _agent(cfg: Config, ctx: Context, api: apiclient.Api, *, prepare: bool) -> None:
    """Have the agent running in the wanted mode: restarted when the mode changes, and before
    every preparing run. Each run stands for a burst on a node that has not prepared within
    the agent's cooldown (5 min for cache drops); interleaved runs come minutes apart, and an
    agent kept running would refuse every second one on its cooldown."""
    if ctx.agent is not None and ctx.agent_prepares == prepare and not prepare:
        return
    if ctx.agent is not None:
        ctx.agent.stop()
    if ctx.agent_kubeconfig is None:
        docs = [
            d
            for f in ("rbac.yaml", "node-policy.yaml")
            for d in yaml.safe_load_all((DEPLOY_AGENT / f).read_text())
            if d
        ]
        await workloads.create_namespace(api, AGENT_NAMESPACE)
        await agentidentity.ensure(api, AGENT_NAMESPACE, docs)
        token = await agentidentity.bound_token(api, AGENT_NAMESPACE, AGENT_SA, cfg.node)
        ctx.agent_kubeconfig = processes.token_kubeconfig(
            cfg.kubeconfig, token, cfg.out / "agent.kubeconfig"
        )
    ctx.agent = processes.agent(cfg.node, ctx.agent_kubeconfig, cfg.out, prepare=prepare)
    ctx.agent_prepares = prepare


async def one_run(
    cfg: Config,
    ctx: Context,
    api: apiclient.Api,
    scenario: str,
    index: int,
    *,
    say: Callable[[str], None],
) -> results.Run:
    """Prepare the node, launch the Job, follow it to the end, clean up."""
    namespace = f"bench-{scenario}-{index}-{int(time.time()) % 100000}"
    ahead = scenario == "guarded-leadtime"
    if scenario == "unguarded":
        await workloads.delete_policy(api, POLICY_NAME)
    else:
        lead = LEAD_TIME_S if ahead else 0.0
        await workloads.apply_policy(api, guarded_policy(cfg.node, lead))
    await _agent(cfg, ctx, api, prepare=scenario in ("guarded", "guarded-leadtime"))
    say(f"{scenario} #{index}: filling the page cache to the high watermark")
    filled = await asyncio.to_thread(memory.fill_page_cache, cfg.fill_dir, cfg.fill_max_bytes)
    hog = memory.Hog(cfg.hog_bytes)
    room = memory.read()
    notes = [
        f"page cache fill {filled / 2**30:.1f} GiB on disk; before the burst free "
        f"{room.free_bytes / 2**20:.0f} MiB, high {room.high_bytes / 2**20:.0f} MiB, "
        f"hog {cfg.hog_bytes / 2**30:.1f} GiB"
    ]
    probe = KswapdProbe()
    if probe.reason:
        notes.append(probe.reason)
    store = podtimes.PodTimes()
    await workloads.create_namespace(api, namespace)
    informer = watching.Informer(api, f"/api/v1/namespaces/{namespace}/pods", store)
    task = asyncio.create_task(informer.run())
    began = time.time()
    watch = memory.Watch(began)
    watch.start()
    before = memory.vmstat()
    aborted = ""
    try:
        if ahead:
            fire_at = cron_minute(time.time(), LEAD_TIME_S)
            await workloads.create(
                api,
                f"/apis/batch/v1/namespaces/{namespace}/cronjobs",
                burst_cronjob(cfg, "burst", fire_at),
            )
            notes.append(
                f"CronJob fires at {time.strftime('%H:%M:%S', time.gmtime(fire_at))} UTC, "
                f"{fire_at - time.time():.0f} s after creation; leadTime {LEAD_TIME_S:g} s; "
                "vmstat deltas include the preparation ahead"
            )
        else:
            await workloads.create(
                api, f"/apis/batch/v1/namespaces/{namespace}/jobs", burst_job(cfg, "burst")
            )
        while True:
            await asyncio.sleep(0.5)
            done = store.count("finished")
            say(
                f"{scenario} #{index}: {store.count('created')} created, "
                f"{store.count('started')} started, {done} finished of {cfg.pods}"
            )
            if watch.tripped:
                aborted = watch.tripped
                break
            ended = await workloads.jobs_finished(api, namespace)
            if ended:
                if ended != "Complete":
                    aborted = f"Job ended {ended}"
                break
            if time.time() - began > cfg.timeout_s:
                aborted = f"timed out after {cfg.timeout_s:.0f} s"
                break
    finally:
        hog.stop()
        after = memory.vmstat()
        watch.stop()
        wakes, mount = probe.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await workloads.delete_namespace(api, namespace)
    overdue_s = policy_api.DEFAULT_MAX_GATE_SECONDS
    pods = [
        results.PodTimes(
            name=name,
            created_at=m.created_at,
            started_at=m.started_at,
            ungated_at=m.ungated_at,
            scheduled_at=m.scheduled_at,
            finished_at=m.finished_at,
            overdue=m.ungated_at is not None and m.ungated_at - m.created_at >= overdue_s,
        )
        for name, m in sorted(store.pods.items())
    ]
    return results.Run(
        scenario=scenario,
        index=index,
        began_at=began,
        ended_at=time.time(),
        pods=pods,
        vmstat_before=before,
        vmstat_after=after,
        kswapd_wakes=wakes,
        mount_latency_s=mount,
        memory=watch.samples,
        aborted=aborted,
        notes=notes,
    )


async def run_all(cfg: Config, say: Callable[[str], None]) -> list[results.Run]:
    """Every run, interleaved; each recorded under ``out/runs/`` as soon as it ends."""
    api = await apiclient.connect(str(cfg.kubeconfig))
    ctx = Context()
    runs: list[results.Run] = []
    (cfg.out / "runs").mkdir(parents=True, exist_ok=True)
    try:
        ctx.operator, _ = await asyncio.to_thread(
            processes.operator, cfg.kubeconfig, cfg.out, AGENT_NAMESPACE
        )
        for index in range(1, cfg.runs + 1):
            for scenario in cfg.scenarios:
                run = await one_run(cfg, ctx, api, scenario, index, say=say)
                results.save_run(run, cfg.out / "runs" / f"{scenario}-{index}.json")
                runs.append(run)
                if run.aborted.startswith("safety stop"):
                    say(f"{scenario} #{index}: {run.aborted}; stopping the benchmark")
                    return runs
    finally:
        with contextlib.suppress(Exception):
            await workloads.delete_policy(api, POLICY_NAME)
        for child in (ctx.agent, ctx.operator):
            if child is not None:
                child.stop()
        if not cfg.keep_fill:
            shutil.rmtree(cfg.fill_dir, ignore_errors=True)
        await api.close()
    return runs
