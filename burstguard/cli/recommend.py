"""``burstguard recommend``: policy values and node sysctls from a fleet's history, with evidence.

Reads history from Prometheus (``--prometheus URL --since 6h``) or a recorded timeline file
(``--timeline FILE``, e.g. written by ``burstguard demo``), optionally enriched with the
cluster's Node objects (``--kubeconfig``: cores, memory, kernel and exposure from the agents'
summaries), and prints the recommendations (core/recommending.py) as a table with the
evidence for each, plus the fleet exposure report (nodes on kernels with the global
``shrinker_rwsem``). ``-o yaml`` prints a ready BurstPolicy in DryRun mode (the evidence as
comments above it); ``-o json`` prints everything for machines.

Exit codes: 0 recommendations printed; 2 bad usage; 3 no history found; 4 a source could not
be read (Prometheus down, timeline unreadable, API server unreachable).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml

from burstguard.api import units
from burstguard.core import recommending

EXIT_OK, EXIT_USAGE, EXIT_EMPTY, EXIT_SOURCE = 0, 2, 3, 4


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return units.duration_seconds(value)
    except (ValueError, units.UnitError) as exc:
        raise click.BadParameter(f"{value!r} is not a duration like 30s, 15m or 6h") from exc


def _fail(message: str, hint: str, code: int) -> None:
    click.echo(f"burstguard recommend: {message}", err=True)
    click.echo(hint, err=True)
    sys.exit(code)


def _from_prometheus(url: str, since_s: float, step_s: float, node_label: str) -> Any:
    from burstguard.promsource import querying  # noqa: PLC0415 (only when asked)

    source = querying.PromSource(querying.Config(url=url, node_label=node_label))
    now = time.time()
    try:
        return source.history(now - since_s, now, step_s)
    except querying.PrometheusUnavailable as exc:
        _fail(str(exc), "Check --prometheus (base URL, e.g. http://127.0.0.1:9090).", EXIT_SOURCE)
    return ()


def _enrich(histories: Any, kubeconfig: str) -> Any:
    from burstguard.k8s import fleet  # noqa: PLC0415 (only when asked)

    try:
        facts = fleet.node_facts(kubeconfig)
    except fleet.FleetApiError as exc:
        _fail(str(exc), "Check --kubeconfig and that the API server is up.", EXIT_SOURCE)
    by_name = {h.node: h for h in histories}
    out = []
    for name in sorted(set(by_name) | set(facts)):
        h = by_name.get(name) or recommending.NodeHistory(node=name, samples=())
        f = facts.get(name)
        if f is not None:
            h = dataclasses.replace(
                h,
                cores=f.cores if f.cores is not None else h.cores,
                memory_bytes=f.memory_bytes if f.memory_bytes is not None else h.memory_bytes,
                kernel_release=f.kernel_release or h.kernel_release,
                shrinker_exposed=(
                    f.shrinker_exposed if f.shrinker_exposed is not None else h.shrinker_exposed
                ),
                simulated=f.simulated or h.simulated,
            )
        out.append(h)
    return tuple(out)


def _table(report: recommending.Report) -> str:
    ev = report.evidence
    lines = [
        f"History: {ev.nodes} nodes over {ev.span_s / 60:.1f} min; {len(ev.bursts)} bursts, "
        f"{len(ev.episodes)} kswapd reclaim episodes.",
        "",
        f"{'RECOMMENDATION':<34} {'VALUE':<16} EVIDENCE",
    ]
    for r in report.recommendations:
        scope = f" [{len(r.nodes)} nodes]" if r.nodes else ""
        lines.append(f"{r.field:<34} {r.value!s:<16} {r.evidence}{scope}")
    exposed = [row for row in report.exposure if row.exposed]
    lines += [
        "",
        f"Fleet exposure: {len(exposed)} of {len(report.exposure)} nodes run a kernel "
        "with the global shrinker_rwsem (mount stalls under reclaim, fixed in 6.7).",
    ]
    if report.exposure:
        lines.append(f"{'NODE':<32} {'KERNEL':<24} {'EXPOSED':<8} RECLAIM EPISODES")
        for row in report.exposure:
            verdict = {True: "yes", False: "no", None: "unknown"}[row.exposed]
            sim = " (simulated)" if row.simulated else ""
            lines.append(
                f"{row.node + sim:<32} {row.kernel_release or '-':<24} {verdict:<8} {row.episodes}"
            )
    return "\n".join(lines)


def _yaml(report: recommending.Report, name: str) -> str:
    header = ["# BurstPolicy recommended by `burstguard recommend` (mode DryRun: changes nothing)."]
    for r in report.recommendations:
        scope = f" (nodes: {', '.join(r.nodes)})" if r.nodes else ""
        header.append(f"# {r.field} = {r.value}: {r.evidence}{scope}")
    body = yaml.safe_dump(recommending.policy_object(report, name), sort_keys=False)
    return "\n".join(header) + "\n" + body


@click.command(name="recommend")
@click.option("--prometheus", "prometheus_url", help="Prometheus base URL to read history from.")
@click.option(
    "--timeline",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A recorded timeline JSON (e.g. from `burstguard demo`) instead of Prometheus.",
)
@click.option(
    "--since", default="6h", show_default=True, callback=_seconds, help="History to read."
)
@click.option(
    "--step", default="15s", show_default=True, callback=_seconds, help="Resolution of history."
)
@click.option(
    "--node-label",
    default="instance",
    show_default=True,
    help="Prometheus label that carries the Node name.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Read Node facts (cores, memory, kernels) from this cluster too.",
)
@click.option(
    "--start-seconds",
    type=click.FloatRange(0.1, 600),
    default=2.0,
    show_default=True,
    help="Typical container start time, for the release rate.",
)
@click.option("--name", default="recommended", show_default=True, help="Name of the policy.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "yaml", "json"]),
    default="table",
    show_default=True,
)
def command(  # noqa: PLR0917 (click passes options as arguments)
    prometheus_url: str | None,
    timeline: Path | None,
    since: float,
    step: float,
    node_label: str,
    kubeconfig: str | None,
    start_seconds: float,
    name: str,
    output: str,
) -> None:
    """Propose BurstPolicy values and node sysctls from history, with the evidence."""
    if bool(prometheus_url) == bool(timeline):
        raise click.UsageError("give exactly one of --prometheus URL or --timeline FILE")
    if timeline is not None:
        try:
            histories = recommending.decode_timeline(timeline.read_text())
        except (OSError, recommending.TimelineError) as exc:
            _fail(
                f"cannot read {timeline}: {exc}",
                "Pass a timeline written by burstguard.",
                EXIT_SOURCE,
            )
    else:
        assert prometheus_url is not None
        histories = _from_prometheus(prometheus_url, since, step, node_label)
    if kubeconfig:
        histories = _enrich(histories, kubeconfig)
    if not any(h.samples for h in histories):
        _fail(
            "no node history found",
            "Is the agent (or node-exporter) scraped, and does --since cover a burst?",
            EXIT_EMPTY,
        )
    report = recommending.recommend(histories, start_seconds=start_seconds)
    if output == "yaml":
        click.echo(_yaml(report, name), nl=False)
    elif output == "json":
        body = {
            "policy": recommending.policy_object(report, name),
            "recommendations": [dataclasses.asdict(r) for r in report.recommendations],
            "evidence": {
                "nodes": report.evidence.nodes,
                "span_s": report.evidence.span_s,
                "bursts": [dataclasses.asdict(b) for b in report.evidence.bursts],
                "episodes": [dataclasses.asdict(e) for e in report.evidence.episodes],
            },
            "exposure": [dataclasses.asdict(row) for row in report.exposure],
        }
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(_table(report))
    sys.exit(EXIT_OK)
