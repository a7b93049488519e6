"""``burstguard demo``: one burst on a SIMULATED fleet, without and with burstguard.

On an embedded default (20 kwok nodes of 4 cores and 16 GiB, half on a pre-6.7 kernel; a Job
of 600 pods of 256 MiB each) it brings up the local control plane (``burstguard.devcluster``,
kwok running the simulated stages of ``simulation.stages``) and hands over to the runner
(``simulation.demoing``): the same burst without burstguard, then with the operator and a
policy holding the chart's defaults (``--tuned`` adds a run with a tuned policy, labelled so;
``--cronjob`` adds the burst as a CronJob without burstguard, with it, and with
``preparation.leadTime``, and checks the lead-time run against its goal).
``simulation.monitoring`` follows each run; ``simulation.demoreport`` writes the report (a
table, ``report.json`` with the policies' specs, ``report.png``) and per-run timelines that
``burstguard recommend --timeline`` reads. Every number about node memory is MODELLED, and
says so.

Exit codes: 0 report written; 1 a run failed or timed out (partial report written);
3 control-plane binaries missing (run ``make setup``); 4 the control plane did not start.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

from burstguard.api import units
from burstguard.devcluster import binaries
from burstguard.devcluster import cluster as devcluster
from burstguard.simulation import demoing, demoreport, monitoring, stages

EXIT_BINARIES, EXIT_CLUSTER = 3, 4


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

    def echo(self, text: str) -> None:
        if self.tty:
            click.echo("\r\033[K", nl=False)
        click.echo(text)


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
@click.option(
    "--tuned",
    is_flag=True,
    help="Also run a tuned policy with an agent allowed to drop page cache (labelled tuned).",
)
@click.option(
    "--cronjob",
    is_flag=True,
    help=f"Also run the burst as a CronJob: unguarded, guarded, and guarded with "
    f"leadTime {demoing.LEAD_TIME_S}s (each waits up to a minute for its fire).",
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
    tuned: bool,
    cronjob: bool,
    keep: bool,
) -> None:
    """Run one burst on a simulated fleet without and with burstguard; report and plot."""
    try:
        units.quantity_bytes(pod_memory)
    except (ValueError, units.UnitError) as exc:
        raise click.BadParameter(f"{pod_memory!r}: {exc}", param_hint="--pod-memory") from exc
    cfg = monitoring.DemoConfig(
        nodes=nodes, pods=pods, pod_memory=pod_memory, run_seconds=run_seconds, seed=seed
    )
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    click.echo(demoreport.BANNER)
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
    line = Line()
    try:
        code, results, fleet = asyncio.run(
            demoing.run(
                cfg,
                out,
                cluster,
                guarded=not unguarded_only,
                tuned=tuned and not unguarded_only,
                cron=cronjob,
                echo=line.echo,
                show=line.show,
            )
        )
    finally:
        if keep:
            click.echo(f"control plane left running: KUBECONFIG={cluster.kubeconfig_path}")
        else:
            cluster.stop()
    line.echo(f"\n{demoreport.BANNER}\n")
    click.echo(demoreport.table(results))
    for r in results:
        if r.note:
            click.echo(f"{r.name}: {r.note}")
    for goal in demoing.goals(results, nodes):
        click.echo(goal)
    click.echo(
        f"\nfleet: {fleet.stats.publishes} summaries published, {fleet.stats.start_marks} starts "
        f"marked, {fleet.stats.acks} preparation requests served, {fleet.stats.errors} write errors"
    )
    png = out / "report.png"
    click.echo(
        f"report: {out / 'report.txt'}, {out / 'report.json'}"
        + (f", {png}" if png.exists() else "")
    )
    if not png.exists():
        click.echo(
            "report.png not drawn: matplotlib is not installed (it is optional: "
            "pip install 'burstguard[demo]'); report.txt and report.json are complete"
        )
    click.echo(
        f"recommend from it: burstguard recommend --timeline {out / 'timeline-unguarded.json'}"
    )
    sys.exit(code)
