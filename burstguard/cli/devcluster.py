"""``burstguard dev-cluster up|status|down``: a local control plane for demos and hacking.

``up`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as
detached processes (they keep running after the command exits), creates a few kwok nodes and
prints the kubeconfig and the kubectl to use. ``status`` shows each component's process and
health endpoint; ``down`` stops every process. The cluster lives in one directory
(``--dir``, env ``BURSTGUARD_DEVCLUSTER_DIR``), whose ``cluster.json`` is the pidfile.

Exit codes: 0 success; 1 the cluster failed to start or a component is unhealthy;
3 the binaries are not built (run ``make setup``); 4 no cluster is running (``status``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

import click

from burstguard.devcluster import binaries, cluster, realnode

EXIT_UNHEALTHY: Final = 1
EXIT_NO_BINARIES: Final = 3
EXIT_NOT_RUNNING: Final = 4

DIR_ENV: Final = "BURSTGUARD_DEVCLUSTER_DIR"


def default_dir() -> Path:
    """``$BURSTGUARD_DEVCLUSTER_DIR`` or ``$XDG_STATE_HOME/burstguard/dev-cluster``."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "burstguard" / "dev-cluster"


dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_dir,
    show_default=f"${DIR_ENV} or ~/.local/state/burstguard/dev-cluster",
    help="Directory holding the cluster's state, certificates, kubeconfig and logs.",
)


@click.group("dev-cluster")
def command() -> None:
    """A real local control plane (etcd, apiserver, scheduler, controller-manager, kwok)."""


def _usage(c: cluster.Cluster) -> str:
    kubeconfig = c.kubeconfig_path
    return "\n".join(
        [
            f"  kubeconfig: {kubeconfig}",
            f"  kubectl:    {c.kubectl}  (Kubernetes {binaries.KUBE_VERSION})",
            f"  logs:       {c.layout.logs}/",
            "",
            "Use it:",
            f"  {c.kubectl} --kubeconfig {kubeconfig} get nodes",
            f"  export KUBECONFIG={kubeconfig}   # for kubectl, kopf, the kubernetes client",
            "Stop it:",
            "  burstguard dev-cluster down"
            + (f" --dir {c.directory}" if c.directory != default_dir().resolve() else ""),
        ]
    )


def _running(directory: Path) -> cluster.Cluster | None:
    try:
        found = cluster.Cluster.attach(directory)
    except cluster.NotRunningError:
        return None
    return found if found.is_running() else None


@command.command("up")
@dir_option
@click.option(
    "--nodes", default=3, show_default=True, type=click.IntRange(0), help="kwok nodes to create."
)
@click.option("--node-cpu", default="32", show_default=True, help="CPU capacity of each node.")
@click.option(
    "--node-memory", default="256Gi", show_default=True, help="Memory capacity of each node."
)
@click.option(
    "--timeout",
    default=cluster.START_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for readiness.",
)
@click.option(
    "--real-node",
    is_flag=True,
    help=f"Also run node {realnode.NODE_NAME} for real on this machine (containerd + kubelet).",
)
def up(  # noqa: PLR0917 (one parameter per option)
    directory: Path, nodes: int, node_cpu: str, node_memory: str, timeout: float, real_node: bool
) -> None:
    """Start the control plane in the background and create kwok nodes."""
    existing = _running(directory)
    if existing is not None:
        if all(h.healthy for h in existing.health()):
            click.echo(f"dev-cluster already running in {existing.directory}")
            if real_node:
                _start_real_node(existing)
            click.echo(_usage(existing))
            return
        click.echo("dev-cluster in that directory is unhealthy; restarting it", err=True)
        _stop_real_node(existing.directory)
    try:
        bins = binaries.locate()
    except binaries.MissingBinariesError as exc:
        raise click.exceptions.Exit(_fail(str(exc), EXIT_NO_BINARIES)) from exc
    try:
        started = cluster.Cluster.start(
            directory,
            bins=bins,
            detach=True,
            timeout_s=timeout,
            progress=lambda m: click.echo(f"  {m}"),
        )
    except cluster.StartError as exc:
        raise click.exceptions.Exit(
            _fail(f"{exc}\nfull logs: {cluster.Layout(directory.resolve()).logs}/", EXIT_UNHEALTHY)
        ) from exc
    try:
        names = started.create_nodes(nodes, cpu=node_cpu, memory=node_memory)
    except (OSError, RuntimeError) as exc:
        started.stop()
        raise click.exceptions.Exit(
            _fail(f"creating kwok nodes failed: {exc}", EXIT_UNHEALTHY)
        ) from exc
    click.echo(
        f"dev-cluster ready in {started.ready_seconds:.1f} s at {started.server} "
        f"with {len(names)} kwok node(s)"
    )
    if real_node:
        _start_real_node(started)
    click.echo(_usage(started))


def _start_real_node(started: cluster.Cluster) -> None:
    found = realnode.RealNode.attach(started.directory)
    if found is not None and found.is_running():
        click.echo(f"real node {realnode.NODE_NAME} already running")
        return
    try:
        node = realnode.RealNode.start(started, progress=lambda m: click.echo(f"  {m}"))
    except (realnode.RealNodeError, OSError) as exc:
        raise click.exceptions.Exit(
            _fail(f"real node failed: {exc}\n(the control plane keeps running)", EXIT_UNHEALTHY)
        ) from exc
    click.echo(
        f"real node {node.name} Ready in {node.ready_seconds:.1f} s: address "
        f"{node.instance.node_ip} on bridge {node.instance.bridge}, cgroup root "
        f"{node.instance.cgroup_root}; pods need imagePullPolicy: Never and a local image "
        "(localhost/burstguard/pause:3.10, localhost/burstguard/workload:v1)"
    )


def _stop_real_node(directory: Path) -> None:
    node = realnode.RealNode.attach(directory)
    if node is None:
        return
    left = node.stop()
    if left:
        click.echo(f"real node: could not remove: {'; '.join(left)}", err=True)
    else:
        click.echo(f"real node {realnode.NODE_NAME} removed")


def _fail(message: str, code: int) -> int:
    click.echo(f"error: {message}", err=True)
    return code


@command.command("status")
@dir_option
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def status(directory: Path, output: str) -> None:
    """Show each component's process and health endpoint."""
    try:
        found = cluster.Cluster.attach(directory)
    except cluster.NotRunningError as exc:
        if output == "json":
            click.echo(json.dumps({"running": False, "directory": str(directory)}))
        else:
            click.echo(
                f"no dev-cluster in {directory} (start one with `burstguard dev-cluster up`)"
            )
        raise click.exceptions.Exit(EXIT_NOT_RUNNING) from exc
    health = found.health()
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "running": found.is_running(),
                    "directory": str(found.directory),
                    "server": found.server,
                    "kubeconfig": str(found.kubeconfig_path),
                    "kubectl": str(found.kubectl),
                    "components": [h.__dict__ for h in health],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"dev-cluster in {found.directory}  server {found.server}")
        click.echo(f"{'COMPONENT':<25} {'PID':>8}  {'RUNNING':<8} {'HEALTHY':<8} DETAIL")
        for h in health:
            click.echo(f"{h.name:<25} {h.pid:>8}  {h.running!s:<8} {h.healthy!s:<8} {h.detail}")
        click.echo(f"kubeconfig: {found.kubeconfig_path}")
    if not found.is_running():
        raise click.exceptions.Exit(EXIT_NOT_RUNNING)
    if not all(h.healthy for h in health):
        raise click.exceptions.Exit(EXIT_UNHEALTHY)


@command.command("down")
@dir_option
def down(directory: Path) -> None:
    """Stop every process of the dev-cluster (idempotent)."""
    try:
        found = cluster.Cluster.attach(directory)
    except cluster.NotRunningError:
        _stop_real_node(directory)
        click.echo(f"no dev-cluster in {directory}; nothing to stop")
        return
    _stop_real_node(found.directory)
    killed = found.stop()
    note = f" (killed after the grace period: {', '.join(killed)})" if killed else ""
    click.echo(f"dev-cluster in {found.directory} stopped{note}")
