"""The demo's report: which numbers, under which labels, from which runs.

The rendering is generic (``reporting.scenarios``); this module only says what the demo
reports. ``report.json`` carries the banner (it is a SIMULATION), the scenario, the policy
each guarded run used (its name, whether it is the chart's defaults or tuned, and the spec as
the API server served it, defaults filled in) and the simulated agent's preparation settings,
so a reader can tell exactly what was compared. The README's demo table is
:func:`readme_table` of a committed ``report.json`` (a unit test checks they match).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from burstguard.reporting import scenarios
from burstguard.simulation import monitoring

BANNER: Final = "SIMULATION: kwok nodes with a modelled node memory (calibrated, not measured)"

ROWS: Final = (
    scenarios.Row("nodes that entered reclaim (kswapd woke)", "nodes_entered_reclaim", "{:d}"),
    scenarios.Row("kswapd wake-ups", "kswapd_wakes", "{:d}"),
    scenarios.Row("modelled mount stalls (pre-6.7 nodes)", "modelled_stalls", "{:d}"),
    scenarios.Row("modelled stall time, s", "modelled_stall_seconds", "{:.1f}"),
    scenarios.Row("allocation stalls (direct reclaim)", "allocstalls", "{:d}"),
    scenarios.Row(
        "makespan, modelled (Job -> last start done), s", "modelled_makespan_s", "{:.1f}"
    ),
    scenarios.Row("makespan as the API saw it (+ kwok lag), s", "makespan_s", "{:.1f}"),
    scenarios.Row("makespan / unguarded, same burst (modelled)", "makespan_ratio", "{:.2f}x"),
    scenarios.Row("max pods starting on one node", "max_starting_per_node", "{:d}"),
    scenarios.Row("container start p50, s", "start_p50_s", "{:.2f}"),
    scenarios.Row("container start max, s", "start_max_s", "{:.2f}"),
    scenarios.Row(
        "pods created without the gate (ungated or failed open)", "created_ungated", "{:d}"
    ),
    scenarios.Row("host load average (1 min), highest", "load_max", "{:.1f}"),
    scenarios.Row("nodes asked to prepare before the fire", "prepared_before_fire", "{:d}"),
    scenarios.Row("last request before the fire, s ahead", "prepared_lead_s", "{:.1f}"),
    scenarios.Row("memory freed before the fire, GiB (modelled)", "prepared_freed_gib", "{:.1f}"),
)

PANELS: Final = (
    ("started", "pods started"),
    ("starting", "pods starting"),
    ("reclaiming", "nodes in reclaim (kswapd awake, modelled)"),
)


def scenario(result: monitoring.RunResult) -> scenarios.Scenario:
    """One run as a report column."""
    values = {k: v for k, v in asdict(result).items() if k not in ("name", "trace")}
    series = {
        "started": [(p[0], float(p[3])) for p in result.trace],
        "starting": [(p[0], float(p[2])) for p in result.trace],
        "reclaiming": [(p[0], float(p[5])) for p in result.trace],
    }
    return scenarios.Scenario(result.name, values, series)


def table(results: Sequence[monitoring.RunResult]) -> str:
    """The comparison as a text table."""
    return scenarios.table(ROWS, [scenario(r) for r in results])


def write(
    results: Sequence[monitoring.RunResult],
    cfg: monitoring.DemoConfig,
    out: Path,
    *,
    policies: Sequence[Mapping[str, Any]] = (),
    agent: Mapping[str, Any] | None = None,
    goals: Sequence[str] = (),
) -> bool:
    """report.txt, report.json and report.png in ``out``; False when the PNG was not drawn
    (matplotlib, the ``demo`` extra, is not installed)."""
    columns = [scenario(r) for r in results]
    text = f"{BANNER}\n\n{scenarios.table(ROWS, columns)}\n"
    for r in results:
        if r.note:
            text += f"\n{r.name}: {r.note}"
    for goal in goals:
        text += f"\n{goal}"
    (out / "report.txt").write_text(text + "\n")
    meta = {
        "simulated": True,
        "banner": BANNER,
        "scenario": asdict(cfg),
        "policies": list(policies),
        "agent": dict(agent or {}),
        "goals": list(goals),
    }
    scenarios.dump(columns, meta, out / "report.json")
    return scenarios.plot(
        columns,
        PANELS,
        f"SIMULATION: {cfg.pods} pods x {cfg.pod_memory} on {cfg.nodes} kwok nodes "
        f"({cfg.cores} cores, {cfg.memory}, {cfg.exposed_fraction:.0%} pre-6.7) - modelled memory",
        out / "report.png",
        xlabel="seconds since the Job was created",
    )


def readme_table(path: Path) -> str:
    """The README's demo table: the committed report's runs, with the policy each used, and
    the goals it was checked against, met or missed."""
    meta, columns = scenarios.load(path)
    labels = {p["run"]: p["label"] for p in meta.get("policies", [])}
    named = [
        scenarios.Scenario(
            f"{c.name} ({labels[c.name]})"
            if c.name in labels and labels[c.name] not in c.name
            else c.name,
            c.values,
        )
        for c in columns
    ]
    goals = "".join(f"\n\n{goal}" for goal in meta.get("goals", []))
    return scenarios.markdown(ROWS, named) + goals


if __name__ == "__main__":  # python -m burstguard.simulation.demoreport docs/demo/report.json
    import sys

    print(readme_table(Path(sys.argv[1])))
