"""``burstguard bench node``: a real burst on the real node, unguarded and guarded.

Runs ``--runs`` interleaved rounds of the scenarios (``burstguard.nodebench.running``) on a
node of a running cluster (``burstguard dev-cluster up --real-node`` gives ``real-0``), and
writes ``results.json``, ``REPORT.md`` and ``plot.png`` to ``--out``. ``--report-only``
rebuilds those from the runs recorded in ``--out/runs``.

Exit codes: 0 report written; 1 a run was aborted (safety stop or timeout; partial report
written); 3 no such Ready node (start the cluster with the real node first).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

from burstguard.cli import devcluster as devcluster_cli
from burstguard.devcluster import cluster
from burstguard.k8s import agentidentity, apiclient
from burstguard.nodebench import results, running

EXIT_ABORTED, EXIT_NO_NODE = 1, 3


@click.group("bench")
def command() -> None:
    """Benchmarks on real parts."""


async def _ready(kubeconfig: Path, node: str) -> str:
    """ "" when ``node`` is a Ready node kwok does not manage, else why not."""
    if not kubeconfig.is_file():
        return f"no kubeconfig at {kubeconfig} (is the cluster up?)"
    try:
        api = await apiclient.connect(str(kubeconfig))
        try:
            ready, obj = await agentidentity.node_ready(api, node)
        finally:
            await api.close()
    except Exception as exc:  # any failure to reach the cluster says the same
        return f"cannot reach the cluster of {kubeconfig}: {exc}"
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not ready:
        return f"no Ready node {node!r}"
    if "kwok.x-k8s.io/node" in annotations:
        return f"node {node!r} is a kwok node, not a real kubelet"
    return ""


def _say(text: str) -> None:
    click.echo(f"\r\x1b[K{time.strftime('%H:%M:%S')} {text}", nl=False, err=True)


@command.command("node")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path))
@click.option("--node", default="real-0", show_default=True, help="The real node to burst on.")
@click.option(
    "--kubeconfig",
    default=None,
    type=click.Path(path_type=Path),
    help="Admin kubeconfig of the cluster; default: the dev-cluster's.",
)
@click.option("--pods", default=80, show_default=True, type=click.IntRange(1, 500))
@click.option("--pod-memory", default="256Mi", show_default=True)
@click.option("--image", default="localhost/burstguard/workload:v1", show_default=True)
@click.option("--fault-mib", default=128, show_default=True, type=click.IntRange(1, 1024))
@click.option("--hog", "hog_gib", default=2.0, show_default=True, type=click.FloatRange(0, 16))
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(results.SCENARIOS),
    help="Run only these scenarios (repeatable); default unguarded, guarded, guarded-observe.",
)
@click.option("--report-only", is_flag=True, help="Rebuild the report from --out/runs.")
def node(  # noqa: PLR0917 (click passes options as arguments)
    runs: int,
    out: Path,
    node: str,
    kubeconfig: Path | None,
    pods: int,
    pod_memory: str,
    image: str,
    fault_mib: int,
    hog_gib: float,
    scenarios: tuple[str, ...],
    report_only: bool,
) -> None:
    """Burst a Job of real pods on the real node: unguarded, guarded, guarded-observe (and
    guarded-leadtime, a CronJob prepared ahead, when asked for)."""
    kubeconfig = kubeconfig or devcluster_cli.default_dir() / cluster.KUBECONFIG_FILE
    context = {
        "node": node,
        "pods": pods,
        "pod_memory": pod_memory,
        "fault_mib": fault_mib,
        "hog_gib": hog_gib,
    }
    if report_only:
        recorded = [results.load_run(p) for p in sorted((out / "runs").glob("*.json"))]
    else:
        why = asyncio.run(_ready(kubeconfig, node))
        if why:
            click.echo(f"{why}: start it with `burstguard dev-cluster up --real-node`", err=True)
            sys.exit(EXIT_NO_NODE)
        cfg = running.Config(
            kubeconfig=kubeconfig,
            node=node,
            out=out,
            runs=runs,
            pods=pods,
            pod_memory=pod_memory,
            image=image,
            fault_mib=fault_mib,
            hog_bytes=int(hog_gib * 2**30),
            scenarios=scenarios or results.DEFAULT_SCENARIOS,
        )
        out.mkdir(parents=True, exist_ok=True)
        recorded = asyncio.run(running.run_all(cfg, _say))
        click.echo("", err=True)
    path, note = results.write(out, recorded, {**context, "runs": runs})
    if note:
        click.echo(note, err=True)
    click.echo((out / "REPORT.md").read_text())
    click.echo(f"wrote {path}, {out / 'REPORT.md'}")
    if any(r.aborted for r in recorded):
        sys.exit(EXIT_ABORTED)
