"""What one burst measured, the medians over runs, and the report: pure, from observations.

A run is described by what was observed, not by derived numbers, so the report can be rebuilt
from a recorded run (``runs/<scenario>-<n>.json``): per pod the watch-observed time it was
created, its gate removed and all its containers started (from pod status), the node's vmstat
counters before and after the burst, and memory samples against the watermarks. Start latency
is pod created -> all containers started (the issue's definition, ``start_*``). Beside it
the node's own start latency (``node_start_*``): released (gate removed; created for a pod
never gated) -> all containers started. The two differ only by the time a pod waits at the
gate; they are equal unguarded. Each scenario's summary is the median over runs of every
figure, with every run kept beside it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

SCENARIOS: Final = ("unguarded", "guarded", "guarded-observe", "guarded-leadtime")
"""Scenario names, in the order runs interleave them."""
DEFAULT_SCENARIOS: Final = ("unguarded", "guarded", "guarded-observe")
"""What ``burstguard bench node`` runs without ``--scenario``: ``guarded-leadtime`` waits for
a cron minute (up to a minute more per run), so it is asked for by name."""

FIGURES: Final = (
    "pods",
    "pods_started",
    "pods_failed_to_start",
    "start_p50_s",
    "start_p99_s",
    "start_max_s",
    "node_start_p50_s",
    "node_start_p99_s",
    "node_start_max_s",
    "makespan_s",
    "pgscan_kswapd",
    "pgscan_direct",
    "allocstall",
    "kswapd_wakes",
    "gate_max_s",
    "released_overdue",
)
"""Keys of every run and of each scenario's median (results.json contract)."""

GOALS: Final[tuple[tuple[str, str, Callable[[float, float], bool]], ...]] = (
    ("start_p99_s", "guarded start p99 at least 3x lower", lambda g, u: g * 3 <= u),
    ("makespan_s", "guarded makespan at most 1.15x", lambda g, u: g <= 1.15 * u),
    ("pgscan", "guarded pgscan (kswapd + direct) at least 80 % lower", lambda g, u: g <= 0.2 * u),
)


@dataclass(frozen=True)
class PodTimes:
    """One pod, watch-observed Unix seconds."""

    name: str
    created_at: float
    started_at: float | None = None
    """All containers started (containerStatuses[].started / state), None if never."""
    ungated_at: float | None = None
    """burstguard's gate seen removed; None when never gated."""
    scheduled_at: float | None = None
    """Bound to a node (``spec.nodeName`` seen set); None if never (or not recorded)."""
    finished_at: float | None = None
    """Succeeded or Failed seen."""
    overdue: bool = False
    """Released by maxGateSeconds (a ReleasedOverdue Event)."""


@dataclass(frozen=True)
class MemorySample:
    """Node memory at one moment, bytes; ``t`` seconds since the burst began."""

    t: float
    free: int
    min: int
    low: int
    high: int
    available: int


@dataclass
class Run:
    """Everything observed in one run of one scenario."""

    scenario: str
    index: int
    began_at: float
    ended_at: float
    pods: list[PodTimes]
    vmstat_before: dict[str, int]
    vmstat_after: dict[str, int]
    kswapd_wakes: int | None = None
    mount_latency_s: dict[str, float] | None = None
    """p50/p99/max of overlay mount syscalls from bpftrace; None where unavailable."""
    memory: list[MemorySample] = field(default_factory=list)
    aborted: str = ""
    """Why the run stopped early ("" when it completed)."""
    notes: list[str] = field(default_factory=list)


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _delta(run: Run, *keys: str) -> int:
    return sum(run.vmstat_after.get(k, 0) - run.vmstat_before.get(k, 0) for k in keys)


def figures(run: Run) -> dict[str, Any]:
    """The results.json figures of one run."""
    starts = [p.started_at - p.created_at for p in run.pods if p.started_at is not None]
    node_starts = [
        p.started_at - (p.ungated_at if p.ungated_at is not None else p.created_at)
        for p in run.pods
        if p.started_at is not None
    ]
    gates = [p.ungated_at - p.created_at for p in run.pods if p.ungated_at is not None]
    ends = [p.finished_at or p.started_at for p in run.pods]
    done = [e for e in ends if e is not None]
    first = min((p.created_at for p in run.pods), default=run.began_at)

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "pods": len(run.pods),
        "pods_started": len(starts),
        "pods_failed_to_start": sum(
            1 for p in run.pods if p.started_at is None and p.finished_at is not None
        ),
        "start_p50_s": r(_quantile(starts, 0.5)),
        "start_p99_s": r(_quantile(starts, 0.99)),
        "start_max_s": r(max(starts, default=None)),
        "node_start_p50_s": r(_quantile(node_starts, 0.5)),
        "node_start_p99_s": r(_quantile(node_starts, 0.99)),
        "node_start_max_s": r(max(node_starts, default=None)),
        "makespan_s": r(max(done) - first if done else None),
        "pgscan_kswapd": _delta(run, "pgscan_kswapd"),
        "pgscan_direct": _delta(run, "pgscan_direct"),
        "allocstall": _delta(run, *(k for k in run.vmstat_after if k.startswith("allocstall"))),
        "kswapd_wakes": run.kswapd_wakes,
        "gate_max_s": r(max(gates, default=0.0)),
        "released_overdue": sum(1 for p in run.pods if p.overdue),
    }


def _median(values: Sequence[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, int | float)]
    return None if not numbers else statistics.median(numbers)


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    """``{"scenarios": {name: {"median": {...}, "min": ..., "max": ..., "runs": [...]}}}``."""
    out: dict[str, Any] = {}
    for name in SCENARIOS:
        mine = [r for r in runs if r.scenario == name]
        if not mine:
            continue
        each = [
            {
                "run": r.index,
                **figures(r),
                "mount_latency_s": r.mount_latency_s,
                "aborted": r.aborted,
                "notes": r.notes,
            }
            for r in mine
        ]
        out[name] = {
            "median": {k: _median([e[k] for e in each]) for k in FIGURES},
            "min": {
                k: min((e[k] for e in each if e[k] is not None), default=None) for k in FIGURES
            },
            "max": {
                k: max((e[k] for e in each if e[k] is not None), default=None) for k in FIGURES
            },
            "runs": each,
        }
    return {"scenarios": out}


def goals(summary: Mapping[str, Any], guarded: str = "guarded") -> list[tuple[str, str, str]]:
    """(goal, figures, met / MISSED / n/a) for ``guarded`` against ``unguarded``."""
    sc = summary["scenarios"]
    if "unguarded" not in sc or guarded not in sc:
        return []
    u, g = sc["unguarded"]["median"], sc[guarded]["median"]
    rows = []
    for key, text, ok in GOALS:
        if key == "pgscan":
            gv = (g["pgscan_kswapd"] or 0) + (g["pgscan_direct"] or 0)
            uv = (u["pgscan_kswapd"] or 0) + (u["pgscan_direct"] or 0)
        else:
            gv, uv = g[key], u[key]
        if gv is None or uv is None or uv == 0:
            rows.append((text, f"{gv} vs {uv}", "n/a"))
            continue
        rows.append((text, f"{gv:g} vs {uv:g} ({gv / uv:.2f}x)", "met" if ok(gv, uv) else "MISSED"))
    gn, un = g.get("node_start_p99_s"), u.get("start_p99_s")
    if gn is not None and un:
        rows.append(
            (
                "guarded node start p99 (released -> started) at least 3x lower "
                "than unguarded start p99 (how the feasibility probe measured)",
                f"{gn:g} vs {un:g} ({gn / un:.2f}x)",
                "met" if gn * 3 <= un else "MISSED",
            )
        )
    stranded = (
        g["pods"] - g["pods_started"] - (g.get("pods_failed_to_start") or 0)
        if g["pods"] is not None
        else None
    )
    rows.append(
        (
            "none stranded, none released overdue",
            f"not started {stranded}, overdue {g['released_overdue']}",
            "met" if stranded == 0 and not g["released_overdue"] else "MISSED",
        )
    )
    return rows


def report_markdown(summary: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """REPORT.md: the context, one table of medians (min-max), the goals."""
    lines = ["# burstguard bench node", ""]
    lines += [f"- {k}: {v}" for k, v in context.items()]
    lines += ["", "Median over runs (min-max).", ""]
    lines += [
        "Two start latencies. `start_*` is the goal's: pod created -> all containers started",
        "(from pod status), so a guarded pod's start includes its wait at the gate.",
        "`node_start_*` is the node's own: released (gate removed; created, for a pod never",
        "gated) -> all containers started. Unguarded they are equal. The feasibility probe",
        "paced on the client side and created each pod when it released it, so its 3x",
        "lower start p99 was the node's start latency. Here the Job creates every pod at",
        "once and burstguard holds them at the gate: the last pods wait about as long as",
        "the burst takes, so `start_p99_s` can be 3x lower only by finishing the burst 3x",
        "sooner. The goal is met on the node's start latency or not at all.",
        "",
    ]
    names = list(summary["scenarios"])
    lines.append("| figure | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for key in FIGURES:
        cells = []
        for name in names:
            s = summary["scenarios"][name]
            med, lo, hi = s["median"][key], s["min"][key], s["max"][key]
            cells.append("-" if med is None else f"{med:g} ({lo:g}-{hi:g})")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for guarded in SCENARIOS[1:]:
        rows = goals(summary, guarded)
        if rows:
            lines += ["", f"Goals, {guarded} vs unguarded:", ""]
            lines += [f"- {verdict}: {text}: {figs}" for text, figs, verdict in rows]
    for name in names:
        for run in summary["scenarios"][name]["runs"]:
            if run["aborted"] or run["notes"]:
                lines.append(
                    f"\n{name} run {run['run']}: {run['aborted']} {'; '.join(run['notes'])}"
                )
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[Run], path: Path) -> str:
    """Start-latency CDFs and free memory against the watermarks; returns a note ("" when
    written, else why not: matplotlib is an optional extra)."""
    try:
        import matplotlib  # noqa: PLC0415 (optional extra)

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError:
        return "matplotlib is not installed (pip install 'burstguard[demo]'): no plot"
    fig, (cdf, mem) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        starts = sorted(p.started_at - p.created_at for p in run.pods if p.started_at)
        if starts:
            ys = [(i + 1) / len(starts) for i in range(len(starts))]
            cdf.step(starts, ys, where="post", label=f"{run.scenario} #{run.index}")
        if run.memory:
            t = [m.t for m in run.memory]
            mem.plot(
                t, [m.free / 2**20 for m in run.memory], label=f"free, {run.scenario} #{run.index}"
            )
    first = next((r for r in runs if r.memory), None)
    if first is not None:
        for attr, style in (("min", ":"), ("low", "--"), ("high", "-.")):
            mem.axhline(
                getattr(first.memory[0], attr) / 2**20, color="k", linestyle=style, label=attr
            )
    cdf.set_xlabel("pod created -> all containers started, s")
    cdf.set_ylabel("share of pods")
    cdf.legend(fontsize=7)
    mem.set_xlabel("s since the burst began")
    mem.set_ylabel("MiB")
    mem.set_yscale("log")
    mem.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)
    return ""


def save_run(run: Run, path: Path) -> None:
    """Record one run as observed (the report can be rebuilt from these)."""
    path.write_text(json.dumps(asdict(run), indent=1))


def load_run(path: Path) -> Run:
    """Read a recorded run."""
    body = json.loads(path.read_text())
    body["pods"] = [PodTimes(**p) for p in body["pods"]]
    body["memory"] = [MemorySample(**m) for m in body["memory"]]
    return Run(**body)


def write(out: Path, runs: Sequence[Run], context: Mapping[str, Any]) -> tuple[Path, str]:
    """results.json, REPORT.md and plot.png in ``out``; returns the results path and the plot
    note ("" when the plot was written)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs)
    results = out / "results.json"
    results.write_text(json.dumps({"context": dict(context), **summary}, indent=1))
    note = plot(runs, out / "plot.png")
    text = report_markdown(summary, context)
    if note:
        text += f"\n{note}\n"
    (out / "REPORT.md").write_text(text)
    return results, note
