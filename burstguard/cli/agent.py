"""``burstguard agent``: the node agent the DaemonSet runs (or ``--once`` for a quick look).

It samples the node's /proc (``--proc-root``, ``/host/proc`` in the DaemonSet) at ``--hz``,
runs the bpftrace scripts the kernel supports, publishes the summary and the
``BurstguardHeadroom`` condition on its own Node, serves ``/metrics`` and the probes
(``/livez``, ``/readyz``), and serves preparation requests (``--prepare`` executes,
``--dry-run`` only reports; dry-run is the default). ``--once`` takes two samples (rates
need two) without BPF and without the API server, and prints the summary as JSON.

Exit codes: 0 clean stop or summary printed; 2 bad usage; 3 /proc unreadable or garbled
(``--once``: the message names the file); 4 cannot reach the API server at start.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from types import FrameType

import click
from prometheus_client import registry

from burstguard import settings
from burstguard.agent import sampling
from burstguard.api import nodesummary, units
from burstguard.bpf import choosing, running, specs, support
from burstguard.cli import metricsprotection
from burstguard.core import headroom, preparation
from burstguard.exporter import metrics, serving
from burstguard.k8s import nodes, nodetypes

EXIT_OK, EXIT_USAGE, EXIT_PROC, EXIT_API = 0, 2, 3, 4


def _bytes(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return units.quantity_bytes(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a byte quantity like 256Mi: {exc}") from exc


def start_bpf(proc_root: str) -> running.Runner:
    """Choose and start the scripts; every problem becomes the runner's degraded reason."""
    directory = specs.scripts_dir()
    if directory is None:
        return running.Runner(
            (), preflight_reason=f"bpf scripts not found (set {specs.SCRIPTS_DIR_ENV})"
        )
    try:
        all_specs = specs.load_all(directory)
    except specs.SpecError as exc:
        return running.Runner((), preflight_reason=f"bad bpf spec: {exc}")
    facts = choosing.probe_kernel(all_specs, proc_root)
    choices = choosing.choose(all_specs, facts)
    tracing = support.detect()
    reason = ""
    if tracing.bpftrace is None:
        reason = "bpftrace not found on PATH"
    elif not tracing.privileged:
        reason = "no CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN) for bpftrace"
    elif facts.tracefs is None:
        reason = "tracefs not mounted at /sys/kernel/tracing"
    return running.Runner(choices, binary=tracing.bpftrace, preflight_reason=reason)


def _once(config: sampling.Config) -> int:
    agent = sampling.Agent(config)
    agent.tick()
    time.sleep(1.0 / config.hz)
    sample = agent.tick()
    if sample.summary is None:
        reason = agent.procfs_error or f"node state {agent.machine.state.value}"
        click.echo(f"burstguard agent: no summary: {reason}", err=True)
        click.echo("Check --proc-root (the host's /proc is /host/proc in the DaemonSet).", err=True)
        return EXIT_PROC
    body = json.loads(nodesummary.encode(sample.summary))
    body["degraded_reason"] = "bpf not run by --once"
    click.echo(json.dumps(body, indent=2, sort_keys=True))
    return EXIT_OK


@click.command(name="agent")
@click.option(
    "--node-name",
    envvar=["BURSTGUARD_NODE_NAME", "NODE_NAME"],
    help="This node's name (downward API in the DaemonSet).",
)
@click.option(
    "--proc-root",
    default=settings.DEFAULT_PROC_ROOT,
    show_default=True,
    envvar="BURSTGUARD_PROC_ROOT",
    help="Where the host's procfs is mounted.",
)
@click.option(
    "--hz",
    type=click.FloatRange(0.1, 50),
    default=settings.DEFAULT_SAMPLE_HZ,
    show_default=True,
    help="Samples per second.",
)
@click.option(
    "--publish-interval",
    type=click.FloatRange(1, 3600),
    default=settings.DEFAULT_PUBLISH_INTERVAL_S,
    show_default=True,
    help="Longest gap between Node publications without a state change, seconds.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    envvar="KUBECONFIG",
    help="Kubeconfig; in-cluster service account when absent.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9742,
    show_default=True,
    help="Port of /metrics, /livez and /readyz (0: any free port).",
)
@click.option(
    "--metrics-host", default="0.0.0.0", show_default=True, help="Address to serve /metrics on."
)
@click.option(
    "--prepare/--dry-run",
    "execute",
    default=False,
    show_default=True,
    help="Execute preparation actions, or only report them.",
)
@click.option(
    "--bpf/--no-bpf",
    "use_bpf",
    default=True,
    show_default=True,
    help="Run the bpftrace scripts this kernel supports.",
)
@click.option("--once", is_flag=True, help="Print one summary (procfs only) as JSON and exit.")
@click.option(
    "--reserve",
    callback=_bytes,
    default="0",
    show_default=True,
    help="Safety margin subtracted from headroom.",
)
@click.option(
    "--cache-credit",
    type=click.FloatRange(0.0, 1.0),
    default=headroom.DEFAULT_CACHE_CREDIT_RATIO,
    show_default=True,
    help="Share of clean inactive page cache counted as headroom on kernels not exposed to "
    "the shrinker_rwsem stall (0: none).",
)
@click.option(
    "--close-below",
    callback=_bytes,
    default="256Mi",
    show_default=True,
    help="Close the node when headroom is under this.",
)
@click.option(
    "--own-threshold",
    callback=_bytes,
    default="0",
    show_default=True,
    help="Prepare on its own below this headroom when the operator is silent (0: off).",
)
@click.option(
    "--cgroup",
    "cgroups",
    multiple=True,
    help="cgroup v2 directory for memory.reclaim (repeatable); enables targeted reclaim.",
)
@click.option(
    "--vm-sysctl-dir",
    default="",
    help="Directory of the compact_memory and drop_caches files to write (default: "
    "<proc-root>/sys/vm); the DaemonSet mounts only those two files.",
)
@click.option(
    "--drop-page-cache/--no-drop-page-cache",
    default=False,
    show_default=True,
    help="Allow drop_caches=1 as the last resort.",
)
@metricsprotection.options
def command(  # noqa: PLR0917 (click passes options as arguments)
    node_name: str | None,
    proc_root: str,
    hz: float,
    publish_interval: float,
    kubeconfig: str | None,
    metrics_port: int,
    metrics_host: str,
    execute: bool,
    use_bpf: bool,
    once: bool,
    reserve: int,
    cache_credit: float,
    close_below: int,
    own_threshold: int,
    cgroups: tuple[str, ...],
    vm_sysctl_dir: str,
    drop_page_cache: bool,
    metrics_auth: bool,
    metrics_cert_file: str | None,
    metrics_key_file: str | None,
) -> None:
    """Run the node agent: sample, publish headroom on this Node, serve /metrics, prepare."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = sampling.Config(
        node_name=node_name or "",
        proc_root=proc_root,
        hz=hz,
        publish_interval_s=publish_interval,
        reserve_bytes=reserve,
        cache_credit_ratio=cache_credit,
        close_below_bytes=close_below,
        bpf=use_bpf and not once,
        dry_run=not execute,
        own_threshold_bytes=own_threshold,
        preparation=preparation.Params(
            cgroup_reclaim=bool(cgroups), cgroups=cgroups, drop_page_cache=drop_page_cache
        ),
        vm_sysctl_dir=vm_sysctl_dir,
    )
    if once:
        sys.exit(_once(config))
    if not node_name:
        raise click.UsageError("--node-name (or NODE_NAME) is required unless --once is given")
    try:
        writer = nodes.NodeWriter(nodes.connect(kubeconfig), node_name)
        writer.annotations()
    except nodetypes.NodeApiError as exc:
        click.echo(f"burstguard agent: {exc}", err=True)
        click.echo("Check --kubeconfig or the service account, and that the Node exists.", err=True)
        sys.exit(EXIT_API)
    authorize, tls = metricsprotection.build(
        metrics_auth, metrics_cert_file, metrics_key_file, kubeconfig
    )
    runner = start_bpf(proc_root) if config.bpf else None
    collector = metrics.ViewCollector()
    agent = sampling.Agent(config, writer=writer, runner=runner, collector=collector)
    reg = registry.CollectorRegistry(auto_describe=False)
    reg.register(collector)
    server = serving.serve(
        reg,
        metrics_port,
        agent.health,
        host=metrics_host,
        ready=agent.readiness,
        authorize=authorize,
        tls=tls,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    watcher = threading.Thread(
        target=writer.watch_annotations,
        args=(
            agent.on_annotations,
            stop,
            lambda m: logging.getLogger("burstguard.agent").warning("%s", m),
        ),
        name="node-watch",
        daemon=True,
    )
    watcher.start()
    logging.getLogger("burstguard.agent").info(
        "agent for node %s: proc %s at %.1f Hz, metrics on :%d, %s",
        node_name,
        proc_root,
        hz,
        server.port,
        "preparing" if execute else "dry-run",
    )
    try:
        agent.run(stop)
    finally:
        server.stop()
        agent.stop()
    sys.exit(EXIT_OK)
