"""``burstguard demo``: one burst on a SIMULATED fleet, without and with burstguard.

On an embedded default (20 kwok nodes of 4 cores and 16 GiB, half on a pre-6.7 kernel; a Job
of 600 pods of 256 MiB each) it brings up the local control plane (``burstguard.devcluster``,
kwok running the simulated stages of ``simfleet.stages``), the simulated fleet
(``simfleet.running``: the node-memory model of core/fleetmodel.py playing the agent on every
node), and runs the same burst twice from the same node states:

1. **without burstguard**: the Job lands as the scheduler places it;
2. **with burstguard**: the operator (``burstguard operator``, as a subprocess, registering its
   webhook by URL) and an Enforce BurstPolicy pace and steer the pods and ask nodes to prepare.

A live line shows released / starting / running pods and open / closed nodes; the end is a
report (nodes that entered reclaim, modelled mount stalls, makespan, max starting per node) as
a table, ``report.json``, ``report.png`` and per-run timelines that ``burstguard recommend
--timeline`` reads. Every number about node memory is MODELLED, and says so.

Exit codes: 0 report written; 1 a run failed or timed out (partial report written);
3 control-plane binaries missing (run ``make setup``); 4 the control plane did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import click

from burstguard.api import names, units
from burstguard.core import fleetmodel, recommending
from burstguard.devcluster import binaries
from burstguard.devcluster import cluster as devcluster
from burstguard.k8s import apiclient, crds, watching, workloads
from burstguard.simfleet import running, stages

EXIT_OK, EXIT_RUN, EXIT_BINARIES, EXIT_CLUSTER = 0, 1, 3, 4
BANNER: Final = "SIMULATION: kwok nodes with a modelled node memory (calibrated, not measured)"
UNGUARDED: Final = "without burstguard"
GUARDED: Final = "with burstguard"
POLICY_NAME: Final = "demo-burst"


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
    note: str = ""
    trace: list[tuple[float, int, int, int, int, int]] = field(default_factory=list)
    """(t, released, starting, started, closed nodes, nodes in reclaim) every half second."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Line:
    """The single updating progress line (plain lines every few seconds when not a tty)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = 0.0

    def show(self, text: str) -> None:
        if self.tty:
            click.echo(f"\r\033[K{text}", nl=False)
        elif time.monotonic() - self.last >= 5:
            click.echo(text)
            self.last = time.monotonic()

    def done(self) -> None:
        if self.tty:
            click.echo("")


# --- the operator subprocess ---


class Operator:
    """``burstguard operator`` in a subprocess, its webhook registered by URL."""

    def __init__(self, kubeconfig: Path, workdir: Path, namespace: str) -> None:
        self.metrics_port = _free_port()
        self.log = workdir / "operator.log"
        argv = [
            sys.executable,
            "-m",
            "burstguard.cli.main",
            "operator",
            f"--kubeconfig={kubeconfig}",
            "--webhook-host=127.0.0.1",
            f"--webhook-port={_free_port()}",
            f"--cert-dir={workdir / 'operator-certs'}",
            f"--metrics-port={self.metrics_port}",
            "--register-webhook",
            "--install-crd",
            "--standalone",
            f"--namespace={namespace}",
            "--log-format=text",
        ]
        # KUBECONFIG too: kopf's login reads the environment, not the --kubeconfig flag.
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "KUBECONFIG": str(kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=1),
            ):
                return
            time.sleep(0.3)
        raise RuntimeError(f"operator not ready after {timeout_s:.0f} s; see {self.log}")

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as answer:
            return str(answer.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def enforce_policy(cfg: DemoConfig) -> dict[str, Any]:
    """The demo's Enforce policy: paced pods, simulated nodes, start limit one per core."""
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": names.POLICY_KIND,
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "mode": "Enforce",
            "pods": {"podSelector": {"matchLabels": {workloads.PACE_LABEL: "true"}}},
            "nodes": {"nodeSelector": {"matchLabels": {running.SIMULATED_LABEL: "true"}}},
            "pacing": {
                "maxStartingPerNode": cfg.cores,
                "maxStartingPerCore": 1.0,
                "releasePerSecond": 100,
                "burst": 100,
                "podStartupMemory": cfg.pod_memory,
            },
            "headroom": {"reserve": "0", "reopenHold": "2s", "staleAfter": "30s"},
            "preparation": {"enabled": True, "cooldown": "10s"},
        },
    }


# --- one burst ---


async def burst(
    api: apiclient.Api,
    fleet: running.Fleet,
    cfg: DemoConfig,
    *,
    name: str,
    namespace: str,
    line: Line,
) -> RunResult:
    """Launch the Job in ``namespace`` and follow it until every pod started (or timeout)."""
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
    job = workloads.burst_job("burst", cfg.pods, memory=cfg.pod_memory, run_seconds=cfg.run_seconds)
    began = time.monotonic()
    began_wall = time.time()
    wakes = {name: sim.state.counters.kswapd_wakes for name, sim in fleet.nodes.items()}
    try:
        await workloads.create(api, f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
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
            if result.all_released_s is None and seen >= cfg.pods and gated == 0:
                result.all_released_s = t
            line.show(
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
        line.done()
        for task in informers:
            task.cancel()
        await asyncio.gather(*informers, return_exceptions=True)
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
    return result


# --- the report ---

ROWS: Final = (
    ("nodes that entered reclaim (kswapd woke)", "nodes_entered_reclaim", "{:d}"),
    ("kswapd wake-ups", "kswapd_wakes", "{:d}"),
    ("modelled mount stalls (pre-6.7 nodes)", "modelled_stalls", "{:d}"),
    ("modelled stall time, s", "modelled_stall_seconds", "{:.1f}"),
    ("allocation stalls (direct reclaim)", "allocstalls", "{:d}"),
    ("makespan, modelled (Job -> last start done), s", "modelled_makespan_s", "{:.1f}"),
    ("makespan as the API saw it (+ kwok lag), s", "makespan_s", "{:.1f}"),
    ("max pods starting on one node", "max_starting_per_node", "{:d}"),
    ("container start p50, s", "start_p50_s", "{:.2f}"),
    ("container start max, s", "start_max_s", "{:.2f}"),
)


def table(results: list[RunResult]) -> str:
    """The comparison as a text table."""
    width = max(len(label) for label, _, _ in ROWS) + 2
    head = f"{'':<{width}}" + "".join(f"{r.name:>22}" for r in results)
    lines = [head]
    for label, attr, fmt in ROWS:
        cells = []
        for r in results:
            value = getattr(r, attr)
            cells.append(f"{'-' if value is None else fmt.format(value):>22}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)


NO_PLOT: Final = (
    "report.png not drawn: matplotlib is not installed (it is optional: "
    "pip install 'burstguard[demo]'); report.txt and report.json are complete"
)


def plot(results: list[RunResult], cfg: DemoConfig, path: Path) -> bool:
    """report.png: starting pods and nodes in reclaim over time, per run.

    False when matplotlib (the ``demo`` extra) is absent: a plain install, such as the container
    image, runs the demo and writes the text and JSON reports without it.
    """
    try:
        import matplotlib  # noqa: PLC0415 (heavy, optional: the demo extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for r in results:
        if not r.trace:
            continue
        t = [p[0] for p in r.trace]
        axes[0].plot(t, [p[3] for p in r.trace], label=r.name)
        axes[1].plot(t, [p[2] for p in r.trace], label=r.name)
        axes[2].plot(t, [p[5] for p in r.trace], label=r.name)
    titles = ("pods started", "pods starting", "nodes in reclaim (kswapd awake, modelled)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("seconds since the Job was created")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"SIMULATION: {cfg.pods} pods x {cfg.pod_memory} on {cfg.nodes} kwok nodes "
        f"({cfg.cores} cores, {cfg.memory}, {cfg.exposed_fraction:.0%} pre-6.7) - modelled memory"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(results: list[RunResult], cfg: DemoConfig, out: Path) -> bool:
    """report.txt, report.json and report.png in ``out``; False when the PNG was not drawn."""
    text = f"{BANNER}\n\n{table(results)}\n"
    for r in results:
        if r.note:
            text += f"\n{r.name}: {r.note}"
    (out / "report.txt").write_text(text + "\n")
    body = {
        "simulated": True,
        "banner": BANNER,
        "scenario": asdict(cfg),
        "runs": [{k: v for k, v in asdict(r).items() if k != "trace"} for r in results],
    }
    (out / "report.json").write_text(json.dumps(body, indent=2) + "\n")
    return plot(results, cfg, out / "report.png")


# --- the whole demo ---


async def _demo(cfg: DemoConfig, out: Path, cluster: devcluster.Cluster, guarded: bool) -> int:
    node_names = cluster.create_nodes(
        cfg.nodes,
        prefix="sim-node-",
        cpu=str(cfg.cores),
        memory=cfg.memory,
        labels={running.SIMULATED_LABEL: "true"},
    )
    profile = fleetmodel.FleetProfile(
        memory_bytes=units.quantity_bytes(cfg.memory),
        cores=float(cfg.cores),
        exposed_fraction=cfg.exposed_fraction,
    )
    initial = fleetmodel.fleet(
        cfg.nodes, profile, random.Random(cfg.seed), time.time(), prefix="sim-node-"
    )
    assert set(initial) == set(node_names)
    api = await apiclient.connect(str(cluster.kubeconfig_path))
    fleet = running.Fleet(
        api,
        initial,
        running.Config(default_demand_bytes=units.quantity_bytes(cfg.pod_memory), seed=cfg.seed),
    )
    stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(stop))
    line = Line()
    results: list[RunResult] = []
    plotted = False
    code = EXIT_OK
    try:
        await asyncio.sleep(1.0)  # first summaries on every node
        click.echo(f"run 1/2: {cfg.pods} pods {UNGUARDED}")
        first = await burst(api, fleet, cfg, name=UNGUARDED, namespace="burst-unguarded", line=line)
        results.append(first)
        _timeline(fleet, out / "timeline-unguarded.json", UNGUARDED)
        await workloads.delete_namespace(api, "burst-unguarded")
        began = time.monotonic()
        while not await workloads.namespace_gone(api, "burst-unguarded"):
            # kwok works through the first burst's pods; the second must not queue behind them.
            line.show(f"clearing the first burst ({time.monotonic() - began:.0f} s)")
            if time.monotonic() - began > cfg.timeout_s:
                break
            await asyncio.sleep(1.0)
        line.done()
        if not first.completed:
            code = EXIT_RUN
        if guarded:
            fleet.reset(initial)
            await asyncio.sleep(2.0)  # fresh summaries from the reset fleet
            click.echo(f"run 2/2: the same burst {GUARDED} (operator + Enforce policy)")
            operator = Operator(cluster.kubeconfig_path, out, "burst-guarded")
            try:
                await asyncio.get_running_loop().run_in_executor(None, operator.wait_ready)
                await crds.install(api)
                await workloads.apply_policy(api, enforce_policy(cfg))
                await asyncio.sleep(2.0)  # the operator sees the policy before the burst
                second = await burst(
                    api, fleet, cfg, name=GUARDED, namespace="burst-guarded", line=line
                )
                _scrape(operator, out / "operator-metrics.txt")
            except RuntimeError as exc:
                second = RunResult(name=GUARDED, pods=cfg.pods, note=f"operator: {exc}")
            finally:
                operator.stop()
            results.append(second)
            _timeline(fleet, out / "timeline-guarded.json", GUARDED)
            if not second.completed:
                code = EXIT_RUN
    finally:
        stop.set()
        await fleet_task
        await api.close()
        if results:
            plotted = write_report(results, cfg, out)
    click.echo("")
    click.echo(f"{BANNER}\n")
    click.echo(table(results))
    for r in results:
        if r.note:
            click.echo(f"{r.name}: {r.note}")
    click.echo(
        f"\nfleet: {fleet.stats.publishes} summaries published, {fleet.stats.start_marks} starts "
        f"marked, {fleet.stats.acks} preparation requests served, {fleet.stats.errors} write errors"
    )
    png = f", {out / 'report.png'}" if plotted else ""
    click.echo(f"report: {out / 'report.txt'}, {out / 'report.json'}{png}")
    if not plotted:
        click.echo(NO_PLOT)
    click.echo(
        f"recommend from it: burstguard recommend --timeline {out / 'timeline-unguarded.json'}"
    )
    return code


def _timeline(fleet: running.Fleet, path: Path, source: str) -> None:
    path.write_text(recommending.encode_timeline(fleet.timeline(), f"burstguard demo ({source})"))


def _scrape(operator: Operator, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.write_text(operator.metrics())


@click.command(name="demo")
@click.option("--nodes", type=click.IntRange(1, 2000), default=20, show_default=True)
@click.option("--pods", type=click.IntRange(1, 100000), default=600, show_default=True)
@click.option("--pod-memory", default="256Mi", show_default=True, help="Memory per pod start.")
@click.option("--run-seconds", type=click.FloatRange(1, 3600), default=20.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("burstguard-demo"),
    show_default=True,
    help="Where the report, timelines and the cluster's files go.",
)
@click.option(
    "--unguarded-only", is_flag=True, help="Run only the burst without burstguard (no operator)."
)
@click.option("--keep", is_flag=True, help="Leave the control plane running at the end.")
def command(  # noqa: PLR0917 (click passes options as arguments)
    nodes: int,
    pods: int,
    pod_memory: str,
    run_seconds: float,
    seed: int,
    out: Path,
    unguarded_only: bool,
    keep: bool,
) -> None:
    """Run one burst on a simulated fleet without and with burstguard; report and plot."""
    try:
        units.quantity_bytes(pod_memory)
    except (ValueError, units.UnitError) as exc:
        raise click.BadParameter(f"{pod_memory!r}: {exc}", param_hint="--pod-memory") from exc
    cfg = DemoConfig(
        nodes=nodes, pods=pods, pod_memory=pod_memory, run_seconds=run_seconds, seed=seed
    )
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    click.echo(BANNER)
    try:
        bins = stages.staged(binaries.locate(), out / "stages", int(run_seconds * 1000))
    except binaries.MissingBinariesError as exc:
        click.echo(f"burstguard demo: {exc}", err=True)
        sys.exit(EXIT_BINARIES)
    try:
        cluster = devcluster.Cluster.start(
            out / "cluster", bins=bins, detach=keep, progress=lambda m: click.echo(f"  {m}")
        )
    except devcluster.StartError as exc:
        click.echo(f"burstguard demo: the control plane did not start: {exc}", err=True)
        sys.exit(EXIT_CLUSTER)
    try:
        code = asyncio.run(_demo(cfg, out, cluster, guarded=not unguarded_only))
    finally:
        if keep:
            click.echo(f"control plane left running: KUBECONFIG={cluster.kubeconfig_path}")
        else:
            cluster.stop()
    sys.exit(code)
