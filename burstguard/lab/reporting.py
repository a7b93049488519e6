"""The lab report: a markdown page, a JSON result file and a latency CDF plot.

The JSON keeps every raw mount and start latency so any statistic can be recomputed later;
the markdown shows per-scenario medians with their min-max spread over runs, the goal check
(each goal stated with its measured value, met or not), and the longest shrinker_rwsem holds
with the writers they blocked, which is the mechanism and not only the symptom.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from burstguard.lab import measuring

GOAL_UNGUARDED_WAITS: Final = 10
"""Unguarded must reproduce the stall: ≥ 10 shrinker_rwsem writer waits over 100 ms per run."""
GOAL_UNGUARDED_HOLD_S: Final = 1.0
"""... and at least one read hold of 1 s or more per run."""
GOAL_KSWAPD_REDUCTION: Final = 0.80
"""Guarded must cut kswapd scanning by ≥ 80 %."""
GOAL_MAKESPAN_RATIO: Final = 1.15
"""Guarded makespan ≤ 1.15 × unguarded."""


def _m(summary: Mapping[str, Any], key: str) -> dict[str, float]:
    value: dict[str, float] = summary["metrics"][key]
    return value


def _fmt(s: Mapping[str, float], digits: int = 0) -> str:
    med, lo, hi = s["median"], s["low"], s["high"]
    f = f"{{:.{digits}f}}"
    if lo == hi:
        return f.format(med)
    return f"{f.format(med)} ({f.format(lo)}–{f.format(hi)})"


def goals(summaries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, each with the measured value and whether it was met.

    Per-run goals are judged on the worst run; comparisons between scenarios on medians,
    within one run set (the scenarios' runs are interleaved)."""
    out: list[dict[str, Any]] = []
    un, gu, co = (summaries.get(n) for n in ("unguarded", "guarded", "control"))
    if un:
        waits = _m(un, "writer_waits_over_100ms")
        out.append(
            {
                "goal": f"unguarded: ≥ {GOAL_UNGUARDED_WAITS} writer waits over 100 ms per run",
                "measured": f"{waits['low']:.0f} in the fewest run (median {waits['median']:.0f})",
                "met": waits["low"] >= GOAL_UNGUARDED_WAITS,
            }
        )
        holds = _m(un, "hold_max_ms")
        out.append(
            {
                "goal": "unguarded: a shrinker_rwsem hold of ≥ 1 s in every run",
                "measured": f"longest hold {holds['low'] / 1000:.2f} s in the mildest run "
                f"(median {holds['median'] / 1000:.2f} s)",
                "met": holds["low"] >= GOAL_UNGUARDED_HOLD_S * 1000,
            }
        )
    if gu:
        holds = gu["metrics"]["holds_over_100ms"]["high"]
        out.append(
            {
                "goal": "guarded: no shrinker_rwsem hold over 100 ms in any run",
                "measured": f"{holds:.0f} holds over 100 ms in the worst run "
                f"(longest {_m(gu, 'hold_max_ms')['high']:.0f} ms)",
                "met": holds == 0,
            }
        )
    if gu and co:
        m_gu = _m(gu, "mount_over_100ms")["median"]
        m_co = _m(co, "mount_over_100ms")["median"]
        out.append(
            {
                "goal": "guarded: mounts over 100 ms ≤ control's + 1 (medians)",
                "measured": f"{m_gu:.0f} vs control {m_co:.0f}",
                "met": m_gu <= m_co + 1,
            }
        )
    if un and gu:
        k_un = _m(un, "pgscan_kswapd")["median"]
        k_gu = _m(gu, "pgscan_kswapd")["median"]
        cut = 1.0 - (k_gu / k_un) if k_un else 0.0
        out.append(
            {
                "goal": "guarded: kswapd scanning reduced ≥ 80 %",
                "measured": f"{cut * 100:.0f} % (median pgscan_kswapd {k_un:.0f} → {k_gu:.0f})",
                "met": k_un > 0 and cut >= GOAL_KSWAPD_REDUCTION,
            }
        )
        m_un = _m(un, "makespan_s")["median"]
        m_gu = _m(gu, "makespan_s")["median"]
        ratio = m_gu / m_un if m_un else float("inf")
        out.append(
            {
                "goal": "guarded: makespan ≤ 1.15 × unguarded (medians)",
                "measured": f"{ratio:.2f} × ({m_un:.1f} s → {m_gu:.1f} s)",
                "met": ratio <= GOAL_MAKESPAN_RATIO,
            }
        )
    return out


ROWS: Final = (
    ("mount p50 (ms)", "mount_p50_ms", 1),
    ("mount p99 (ms)", "mount_p99_ms", 0),
    ("mount p99.9 (ms)", "mount_p999_ms", 0),
    ("mount max (ms)", "mount_max_ms", 0),
    ("mounts > 100 ms", "mount_over_100ms", 0),
    ("mounts > 1 s", "mount_over_1s", 0),
    ("mounts > 100 ms per 10k", "mount_over_100ms_per_10k", 0),
    ("start p50 (ms)", "start_p50_ms", 0),
    ("start p99 (ms)", "start_p99_ms", 0),
    ("start max (ms)", "start_max_ms", 0),
    ("starts > 1 s", "start_over_1s", 0),
    ("umount max (ms)", "umount_max_ms", 0),
    ("memcg mkdir max (ms)", "mkcg_max_ms", 0),
    ("makespan (s)", "makespan_s", 1),
    ("pgscan_kswapd", "pgscan_kswapd", 0),
    ("pgscan_direct", "pgscan_direct", 0),
    ("allocstall", "allocstall", 0),
    ("slabs_scanned", "slabs_scanned", 0),
    ("shrinker_rwsem hold max (ms)", "hold_max_ms", 0),
    ("holds > 100 ms", "holds_over_100ms", 0),
    ("holds ≥ 1 s", "holds_over_1s", 0),
    ("kswapd hold max (ms)", "kswapd_hold_max_ms", 0),
    ("writer wait max (ms)", "writer_wait_max_ms", 0),
    ("writer waits > 100 ms (mount+umount+mkdir)", "writer_waits_over_100ms", 0),
    ("mount lock wait max (ms)", "mount_lock_wait_max_ms", 0),
    ("mount lock waits > 100 ms", "mount_lock_waits_over_100ms", 0),
    ("reclaimable slab at the burst (MiB)", "slab_mb", 0),
    ("slab fill (guest s)", "prefill_s", 1),
    ("wall time per run (s)", "wall_s", 0),
)


def metric_table(doc: Mapping[str, Any], rows: Sequence[tuple[str, str, int]] = ROWS) -> list[str]:
    """One row per metric, one column per scenario (median over runs, min–max)."""
    summaries: Mapping[str, Mapping[str, Any]] = doc["scenarios"]
    names = list(summaries)
    lines = [
        "| metric | " + " | ".join(f"{n} ({summaries[n]['runs']} runs)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, key, digits in rows:
        cells = [
            _fmt(_m(summaries[n], key), digits) if key in summaries[n]["metrics"] else "–"
            for n in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def goal_table(doc: Mapping[str, Any]) -> list[str]:
    """Each goal with its measured value and whether it was met."""
    lines = ["| goal | measured | met |", "|---|---|---|"]
    for g in doc["goals"]:
        lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |")
    return lines


def runs_table(doc: Mapping[str, Any]) -> list[str]:
    """Every run with its wall time and the host's load around it."""
    lines = [
        "Host wall time and the host's 1-minute load average just before and just after the"
        " boot ('–' when not recorded). Emulated time stretches when other work takes the"
        " host's cores: a run is **busy** when, leaving out the guest's own vCPUs, the load"
        " exceeded one per host core; compare busy runs with care.",
        "",
        f"Busy runs: {_busy_runs(doc['runs'])}.",
        "",
        "| scenario | run | wall (s) | host load before / after | makespan (s) |"
        " mounts > 100 ms | pgscan_kswapd | hold max (ms) | writer waits > 100 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        waits = sum(d["over_100ms"] for d in run["writer_waits"].values())
        lines.append(
            f"| {run['scenario']} | {run['index']} | {run['wall_s']:.0f} | "
            f"{_load_cell(run.get('host_load'))} | {run['makespan_s']:.1f} | "
            f"{run['mount']['over_100ms']}/{run['mount']['n']} | "
            f"{run['vmstat']['pgscan_kswapd']} | {run['holds']['max_ms']:.0f} | {waits} |"
        )
    return lines


def markdown(doc: Mapping[str, Any]) -> str:
    """The report page."""
    lines = [
        "# burstguard incident lab: results",
        "",
        f"Guest: Debian `{doc['guest'].get('package', doc['guest']['release'])}` "
        f"{doc['guest']['package_version']}"
        f"{'' if doc['guest'].get('pinned', True) else ' (**not the pinned kernel**)'}, "
        f"{doc['machine']['cpus']} vCPU, {doc['machine']['memory_mb']} MiB, qemu `{doc['accel']}`. "
        "All times are guest time under emulation (~17x slower than native): compare the "
        "scenarios with each other, not with production.",
        "",
        f"Workload: {json.dumps(doc['workload'])}",
        "",
        "Each cell: median over runs (min–max).",
        "",
        *metric_table(doc),
        "",
        "## Goals",
        "",
        *goal_table(doc),
    ]
    lines += [
        "",
        "## Mechanism: longest shrinker_rwsem read holds and the writers they blocked",
        "",
        "A hold is one `do_shrink_slab()` call (tracepoints `vmscan:mm_shrink_slab_start/end`,"
        " paired in tracefs): on 6.1 `shrink_slab()` holds `shrinker_rwsem` for read across"
        " it and only checks for a waiting writer between shrinkers. Writers are kretprobe"
        " pairs on `prealloc_shrinker`/`register_shrinker_prepared` (mount),"
        " `unregister_shrinker` (umount) and `alloc_shrinker_info` (memcg mkdir)."
        " *Mounts begun* counts the burst's mounts that started during the hold; *starts"
        " faulting throughout* the containers that were faulting in their memory for the whole"
        " hold, each holding one of the node's slots: a hold blocks no mount when every slot is"
        " taken by a start stalled in reclaim.",
        "",
        "| scenario | run | hold (ms) | by | priority | objects to scan | writers blocked | "
        "longest writer wait (ms) | writers released within (ms) | mounts begun | "
        "starts faulting throughout |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        for st in run["stalls"][:3]:
            lines.append(
                f"| {run['scenario']} | {run['index']} | {st['hold_ms']:.0f} | {st['comm']} | "
                f"{st['prio']} | {st['scanned']} | {st['writers_blocked']} | "
                f"{st['longest_writer_wait_ms']:.0f} | {st['writers_released_within_ms']} | "
                f"{st.get('mounts_begun', '–')} | {st.get('starts_faulting', '–')} |"
            )
    lines += ["", "## Runs", "", *runs_table(doc), ""]
    lines += ["![mount and start latency CDF](latency-cdf.png)", ""]
    return "\n".join(lines)


def _load_cell(load: Mapping[str, Any] | None) -> str:
    if load is None:
        return "–"
    cell = f"{load['before']:.1f} / {load['after']:.1f}"
    return f"**{cell} busy**" if load["busy"] else cell


def _busy_runs(runs: Sequence[Mapping[str, Any]]) -> str:
    loads = [r.get("host_load") for r in runs]
    busy = sum(1 for load in loads if load is not None and load["busy"])
    unknown = sum(1 for load in loads if load is None)
    text = f"{busy} of {len(runs)}"
    return text + (f" ({unknown} without a recorded load)" if unknown else "")


def plot(runs: Sequence[measuring.Run], dest: Path) -> bool:
    """Latency CDF (complementary, log scale) per scenario; False when matplotlib is absent."""
    try:
        import matplotlib  # noqa: PLC0415 (optional dependency: the lab extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    by: dict[str, list[measuring.Run]] = {}
    for r in runs:
        by.setdefault(r.scenario, []).append(r)
    for ax, attr, title in (
        (axes[0], "mount_us", "overlay mount(2)"),
        (axes[1], "start_us", "container start"),
    ):
        for name, rs in by.items():
            xs = sorted(x / 1000 for r in rs for x in getattr(r, attr))
            if not xs:
                continue
            n = len(xs)
            ys = [1.0 - i / n for i in range(n)]
            ax.step(xs, ys, where="post", label=f"{name} (n={n})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(100, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("latency, ms (guest time, TCG)")
        ax.set_ylabel("fraction slower (1 − CDF)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    plotted = False
    for name, rs in by.items():
        xs = sorted((x / 1000 for r in rs for x in r.hold_us), reverse=True)
        if xs:
            ax.step(xs, [(i + 1) / len(rs) for i in range(len(xs))], where="post", label=name)
            plotted = True
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("shrinker_rwsem read hold, ms (one do_shrink_slab call)")
    ax.set_ylabel("holds at least this long, per run")
    ax.set_title("mechanism: shrinker_rwsem read holds")
    ax.grid(True, which="both", alpha=0.3)
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no hold of 1 ms or more", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return True


def write(doc: Mapping[str, Any], runs: Sequence[measuring.Run], out: Path) -> list[Path]:
    """Write results.json, REPORT.md and latency-cdf.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "REPORT.md"]
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "REPORT.md").write_text(markdown(doc))
    if plot(runs, out / "latency-cdf.png"):
        written.append(out / "latency-cdf.png")
    return written
