"""Following one burst of the demo: the Job's pods, the nodes' intake, the model's reclaim.

The burst is a Job created at once, or a CronJob (:class:`Schedule`) created ahead of the
fire it is followed for, so that an operator with ``preparation.leadTime`` can forecast it
from the schedule and prepare nodes before it lands; a CronJob run's clock starts at its
scheduled fire. Watches the burst's namespace and the simulated nodes' intake labels,
samples every half second (released / starting / started pods, closed nodes, nodes in
modelled reclaim), shows a progress line through the caller's ``show``, and when every pod
started (or time ran out) reads the fleet's outcome counters into a :class:`RunResult`.
Every memory number comes from the model (``simulation.nodemodel``), not a kernel.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from burstguard.k8s import apiclient, watching, workloads
from burstguard.simulation import running


@dataclass(frozen=True)
class DemoConfig:
    """The embedded default scenario."""

    nodes: int = 20
    """Simulated nodes."""
    pods: int = 600
    """Pods in the burst (one Job, parallelism = completions)."""
    pod_memory: str = "256Mi"
    """Memory request of each pod = memory its start faults in."""
    run_seconds: float = 20.0
    """How long each pod runs after it started, seconds."""
    cores: int = 4
    """Cores per node."""
    memory: str = "16Gi"
    """Memory per node."""
    exposed_fraction: float = 0.5
    """Share of nodes on a pre-6.7 kernel."""
    seed: int = 1
    """Seed of the fleet (node states, kernels, stalls)."""
    timeout_s: float = 600.0
    """Longest one run may take, seconds."""


JOB_NAME: Final = "burst"
"""Name of the burst's Job (and of its CronJob)."""


@dataclass(frozen=True)
class Schedule:
    """A CronJob launch: the schedule it is created with and the fire the run follows."""

    cron: str
    """``spec.schedule`` (five fields, UTC)."""
    fires_at: float
    """The fire followed, Unix seconds (the first the schedule has after creation)."""


@dataclass
class RunResult:
    """One burst's outcome."""

    name: str
    pods: int
    completed: bool = False
    modelled_makespan_s: float | None = None
    makespan_s: float | None = None
    all_released_s: float | None = None
    nodes_entered_reclaim: int = 0
    kswapd_wakes: int = 0
    modelled_stalls: int = 0
    modelled_stall_seconds: float = 0.0
    allocstalls: int = 0
    max_starting_per_node: int = 0
    start_p50_s: float | None = None
    start_max_s: float | None = None
    created_ungated: int = 0
    """Pods created without burstguard's gate (in a guarded run: the webhook failed open)."""
    load_max: float | None = None
    """Highest 1-minute load average of the host during the run (the model runs in wall
    time: a loaded host slows the control plane and the operator, not the model)."""
    launched: str = "Job"
    """How the burst was created: ``Job`` at once, or ``CronJob <schedule>``."""
    makespan_ratio: float | None = None
    """Modelled makespan over the unguarded run's of the same burst (same report)."""
    prepared_before_fire: int | None = None
    """CronJob runs: nodes whose preparation request arrived before the fire."""
    prepared_lead_s: float | None = None
    """CronJob runs: seconds from the last such request's arrival to the fire."""
    prepared_freed_gib: float | None = None
    """CronJob runs: memory the simulated agents freed for those requests, GiB (modelled)."""
    note: str = ""
    trace: list[tuple[float, int, int, int, int, int]] = field(default_factory=list)
    """(t, released, starting, started, closed nodes, nodes in reclaim) every half second."""


async def follow(
    api: apiclient.Api,
    fleet: running.Fleet,
    cfg: DemoConfig,
    *,
    name: str,
    namespace: str,
    show: Callable[[str], None],
    schedule: Schedule | None = None,
) -> RunResult:
    """Launch the Job (or the CronJob of ``schedule``) in ``namespace`` and follow it until
    every pod started (or timeout)."""
    result = RunResult(name=name, pods=cfg.pods)
    await workloads.create_namespace(api, namespace)
    counts = workloads.PodCounts(namespace)
    intake = workloads.IntakeCounts()
    informers = [
        asyncio.create_task(
            watching.Informer(api, f"/api/v1/namespaces/{namespace}/pods", counts).run()
        ),
        asyncio.create_task(
            watching.Informer(
                api,
                "/api/v1/nodes",
                intake,
                label_selector=f"{running.SIMULATED_LABEL}=true",
            ).run()
        ),
    ]
    job = workloads.burst_job(
        JOB_NAME, cfg.pods, memory=cfg.pod_memory, run_seconds=cfg.run_seconds
    )
    wakes = {name: sim.state.counters.kswapd_wakes for name, sim in fleet.nodes.items()}
    asked = len(fleet.stats.prepared)
    try:
        if schedule is None:
            began, began_wall = time.monotonic(), time.time()
            await workloads.create(api, f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
        else:
            result.launched = f"CronJob {schedule.cron}"
            await workloads.create(
                api,
                f"/apis/batch/v1/namespaces/{namespace}/cronjobs",
                workloads.burst_cronjob(job, schedule.cron),
            )
            began_wall = schedule.fires_at
            began = time.monotonic() + (began_wall - time.time())
            while time.monotonic() < began:
                show(
                    f"[{name}] CronJob {schedule.cron} fires in {began - time.monotonic():4.0f} s"
                    f"  |  nodes asked to prepare {len(fleet.stats.prepared) - asked}  (SIMULATED)"
                )
                await asyncio.sleep(min(1.0, max(0.0, began - time.monotonic())))
        while True:
            await asyncio.sleep(0.5)
            t = time.monotonic() - began
            gated = counts.count("gated")
            seen = len(counts.pods)
            released = max(0, seen - gated) if seen else 0
            starting = counts.count("starting")
            started = len(counts.started_at)
            closed = intake.closed()
            # In reclaim now or since the last look (kswapd episodes can be shorter than 0.5 s).
            reclaiming = 0
            for node, sim in fleet.nodes.items():
                now_wakes = sim.state.counters.kswapd_wakes
                reclaiming += sim.state.kswapd_awake or now_wakes > wakes[node]
                wakes[node] = now_wakes
            result.trace.append((t, released, starting, started, closed, reclaiming))
            result.load_max = round(max(result.load_max or 0.0, os.getloadavg()[0]), 1)
            if result.all_released_s is None and seen >= cfg.pods and gated == 0:
                result.all_released_s = t
            show(
                f"[{name}] {t:5.1f}s  pods {seen}/{cfg.pods}  released {released}  "
                f"starting {starting}  running {started}  |  nodes open "
                f"{len(intake.intake) - closed} closed {closed}, in reclaim {reclaiming}  "
                "(SIMULATED)"
            )
            if started >= cfg.pods:
                result.completed = True
                result.makespan_s = max(counts.started_at.values()) - began
                break
            if t > cfg.timeout_s:
                result.note = f"timed out after {cfg.timeout_s:.0f} s with {started} started"
                break
    finally:
        for task in informers:
            task.cancel()
        await asyncio.gather(*informers, return_exceptions=True)
    result.created_ungated = len(counts.ungated)
    # Let the last starts settle into the model's counters before reading them.
    fleet.tick(time.time())
    outcome = fleet.outcome()
    result.nodes_entered_reclaim = int(outcome["nodes_entered_reclaim"])
    result.kswapd_wakes = int(outcome["kswapd_wakes"])
    result.modelled_stalls = int(outcome["stalls"])
    result.modelled_stall_seconds = round(outcome["stall_seconds"], 2)
    result.allocstalls = int(outcome["allocstall"])
    result.max_starting_per_node = int(outcome["max_starting_per_node"])
    result.start_p50_s = outcome.get("start_p50_s")
    result.start_max_s = outcome.get("start_max_s")
    if result.completed and fleet.stats.last_started_at:
        result.modelled_makespan_s = round(fleet.stats.last_started_at - began_wall, 2)
    if schedule is not None:
        ahead = [p for p in fleet.stats.prepared[asked:] if p.at < began_wall]
        result.prepared_before_fire = len({p.node for p in ahead})
        if ahead:
            result.prepared_lead_s = round(began_wall - max(p.at for p in ahead), 2)
            result.prepared_freed_gib = round(sum(p.freed_bytes for p in ahead) / 2**30, 2)
    return result
