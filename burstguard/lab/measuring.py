"""Turning one guest run's raw files into measurements, and runs into scenario summaries.

The guest writes raw records only (``labload`` lines, /proc/vmstat before and after, the
tracefs buffer, the guard's JSON lines); every number in the report is computed here, on the
host, so a change to a statistic never needs a new guest run. Latencies stay in guest time
(microseconds as measured under emulation) and are never rescaled.

Percentiles are nearest-rank on the sorted sample (``p99.9`` of 300 values is the maximum),
which is what "p99.9" can honestly mean for small samples. Across runs a metric is reported as
the median with the min-max spread, because the host is shared and noisy.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

SLOW_US: Final = 100_000
"""A mount or start slower than this is a stall (100 ms, the goal's threshold)."""
VERY_SLOW_US: Final = 1_000_000
"""1 s: the incident's order of magnitude (it saw > 10 s natively)."""
VMSTAT_KEYS: Final = (
    "pgscan_kswapd",
    "pgscan_direct",
    "allocstall",
    "pgsteal_kswapd",
    "slabs_scanned",
    "compact_stall",
    "drop_pagecache",
    "drop_slab",
    "kswapd_low_wmark_hit_quickly",
)
"""vmstat counters reported as deltas over the burst (allocstall sums allocstall_*)."""
WRITERS: Final = (
    "prealloc_shrinker",
    "register_shrinker_prepared",
    "unregister_shrinker",
    "alloc_shrinker_info",
)
"""Functions that take shrinker_rwsem for write: mount (2), umount, memory-cgroup creation."""

_TRACE_LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+"
    r"(?P<event>\w+):\s+(?P<fields>.*)$"
)


class MeasureError(ValueError):
    """A run's files are missing or malformed."""


@dataclass(frozen=True)
class Distribution:
    """A latency sample summarised; times in milliseconds of guest time."""

    n: int
    """Samples."""
    p50_ms: float
    """Median."""
    p99_ms: float
    """99th percentile (nearest rank)."""
    p999_ms: float
    """99.9th percentile (nearest rank)."""
    max_ms: float
    """Largest."""
    over_100ms: int
    """Samples over 100 ms."""
    over_1s: int
    """Samples over 1 s."""


def percentile(sorted_us: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of an ascending sample (0 for an empty one)."""
    if not sorted_us:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_us)))
    return float(sorted_us[min(rank, len(sorted_us)) - 1])


def distribution(values_us: Iterable[int]) -> Distribution:
    """Summarise microsecond samples."""
    xs = sorted(values_us)
    return Distribution(
        n=len(xs),
        p50_ms=percentile(xs, 50) / 1000,
        p99_ms=percentile(xs, 99) / 1000,
        p999_ms=percentile(xs, 99.9) / 1000,
        max_ms=(xs[-1] / 1000) if xs else 0.0,
        over_100ms=sum(1 for x in xs if x > SLOW_US),
        over_1s=sum(1 for x in xs if x > VERY_SLOW_US),
    )


@dataclass(frozen=True)
class Container:
    """One container start as ``labload burst`` recorded it (microseconds, CLOCK_MONOTONIC)."""

    id: int
    """Index in the burst."""
    requested_us: int
    """When it became eligible to start (slot free and, if gated, released)."""
    begin_us: int
    """When its start began."""
    mkcg_us: int
    """Memory-cgroup mkdir duration."""
    mount_us: int
    """Overlay mount(2) duration."""
    start_us: int
    """From begin until its process had faulted in its memory."""
    umount_us: int
    """umount(2) duration."""
    rmcg_us: int
    """Memory-cgroup rmdir duration."""
    ok: bool
    """Mounted and started."""


@dataclass(frozen=True)
class TraceEvent:
    """One tracefs synthetic event (hold or writer wait over 1 ms)."""

    event: str
    """``shrink_hold`` or ``writer_<function>``."""
    comm: str
    """Task that ended the section (kswapd0 for background reclaim)."""
    end_s: float
    """CLOCK_MONOTONIC time the section ended, seconds."""
    lat_us: int
    """Duration, microseconds."""
    prio: int | None = None
    """Reclaim priority of the shrink call (12 = gentle, 0 = everything)."""
    scanned: int | None = None
    """Objects the call was asked to scan."""


@dataclass(frozen=True)
class Run:
    """Measurements of one guest run."""

    scenario: str
    """Scenario name."""
    index: int
    """Run number within the scenario (0-based)."""
    ok: bool
    """Every container mounted and started."""
    containers: int
    """Containers recorded."""
    failed: int
    """Containers that did not mount or start."""
    makespan_s: float
    """First start to last container finished, seconds of guest time."""
    mount: Distribution
    """overlay mount(2) latency."""
    start: Distribution
    """Container start latency (cgroup + mount + process faulting its memory)."""
    umount: Distribution
    """umount(2) latency."""
    mkcg: Distribution
    """Memory-cgroup creation latency."""
    vmstat: dict[str, int]
    """vmstat deltas over the burst (VMSTAT_KEYS)."""
    holds: Distribution
    """do_shrink_slab() sections over 1 ms (shrinker_rwsem read side), any task."""
    holds_kswapd: Distribution
    """The same, by kswapd only."""
    writer_waits: dict[str, Distribution]
    """Waits over 1 ms of each shrinker_rwsem writer."""
    mount_lock_waits: Distribution
    """Mount-path writer waits over 1 ms (prealloc_shrinker + register_shrinker_prepared):
    the part of mount latency the lock caused, as opposed to CPU contention."""
    hold_min_prio: int | None
    """Lowest reclaim priority seen in a traced hold (None without holds)."""
    trace_lost: int
    """Ring-buffer overruns (0 means every event over the filter was kept)."""
    guard_actions: dict[str, int]
    """Preparation actions the guard took, by kind."""
    guard_closed_s: float
    """Time the guard held the node Closed, seconds."""
    wall_s: float
    """Host wall-clock time of the boot, seconds."""
    mount_us: tuple[int, ...] = field(default=(), repr=False)
    """Raw mount latencies (for the CDF plot)."""
    start_us: tuple[int, ...] = field(default=(), repr=False)
    """Raw start latencies."""
    hold_us: tuple[int, ...] = field(default=(), repr=False)
    """Raw shrinker_rwsem read-hold durations (do_shrink_slab calls of 1 ms and more)."""
    stalls: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """The longest holds with the writers they blocked, for the mechanism table."""
    prefill: Prefill | None = None
    """The slab the node started the burst with (None: the guest did not record it)."""


@dataclass(frozen=True)
class Prefill:
    """The reclaimable slab built before the burst, and how long building it took."""

    slab_mb: float
    """SReclaimable after the fill, MiB."""
    dentries: int
    """Dentries in the dcache after the fill (``/proc/sys/fs/dentry-state``)."""
    files_s: float
    """Guest seconds creating the empty files."""
    negdent_s: float
    """Guest seconds creating the negative dentries."""


def parse_prefill(text: str) -> Prefill | None:
    """``prefill.txt``: uptime before files, after files, after negative dentries, then
    dentry-state's first two fields and SReclaimable in kB; None when absent or malformed."""
    parts = text.split()
    if len(parts) < 6:
        return None
    try:
        t0, t1, t2 = (float(x) for x in parts[:3])
        return Prefill(
            slab_mb=round(int(parts[5]) / 1024, 1),
            dentries=int(parts[3]),
            files_s=round(t1 - t0, 1),
            negdent_s=round(t2 - t1, 1),
        )
    except ValueError:
        return None


def parse_containers(text: str) -> tuple[list[Container], tuple[int, int] | None]:
    """``C``/``B`` lines of ``labload burst``; returns containers and (begin, end) µs."""
    out: list[Container] = []
    span: tuple[int, int] | None = None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "C" and len(parts) == 10:
            v = [int(p) for p in parts[1:]]
            out.append(Container(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], bool(v[8])))
        elif parts and parts[0] == "B" and len(parts) >= 3:
            span = (int(parts[1]), int(parts[2]))
    return out, span


def parse_vmstat(text: str) -> dict[str, int]:
    """/proc/vmstat as a dict (the procfs parser is for the agent; this is raw lab data)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def vmstat_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Deltas of VMSTAT_KEYS; allocstall sums the per-zone allocstall_* counters."""
    out: dict[str, int] = {}
    for key in VMSTAT_KEYS:
        if key == "allocstall":
            names = [k for k in after if k.startswith("allocstall")]
        else:
            names = [key] if key in after else []
        out[key] = sum(after[k] - before.get(k, 0) for k in names)
    return out


def parse_trace(text: str) -> list[TraceEvent]:
    """Synthetic events from the tracefs buffer (``trace_clock=mono``)."""
    events: list[TraceEvent] = []
    for line in text.splitlines():
        m = _TRACE_LINE.match(line)
        if not m:
            continue
        kv = dict(re.findall(r"(\w+)=(-?\d+)", m["fields"]))
        if "lat_us" not in kv:
            continue
        events.append(
            TraceEvent(
                event=m["event"],
                comm=m["comm"].strip(),
                end_s=float(m["ts"]),
                lat_us=int(kv["lat_us"]),
                prio=int(kv["prio"]) if "prio" in kv else None,
                scanned=int(kv["scanned"]) if "scanned" in kv else None,
            )
        )
    return events


def trace_overruns(stats: str) -> int:
    """Sum of ``overrun`` over the per-CPU ring buffers."""
    return sum(int(m) for m in re.findall(r"^overrun:\s*(\d+)", stats, re.MULTILINE))


def _stalls(
    events: Sequence[TraceEvent], containers: Sequence[Container], top: int = 8
) -> tuple[dict[str, Any], ...]:
    """The longest holds with what they blocked, and what the burst was doing meanwhile: a
    writer can only wait on a hold while a mount or umount is under way, so the mounts begun
    during each hold and the starts still faulting in their memory say why a long hold did or
    did not block one (labload times are µs on the clock tracefs uses)."""
    holds = sorted((e for e in events if e.event == "shrink_hold"), key=lambda e: -e.lat_us)
    writers = [e for e in events if e.event.startswith("writer_")]
    out: list[dict[str, Any]] = []
    for h in holds[:top]:
        start = h.end_s - h.lat_us / 1e6
        blocked = [w for w in writers if w.end_s - w.lat_us / 1e6 <= h.end_s and w.end_s >= h.end_s]
        out.append(
            {
                "hold_ms": h.lat_us / 1000,
                "comm": h.comm,
                "prio": h.prio,
                "scanned": h.scanned,
                "start_s": round(start, 3),
                "end_s": round(h.end_s, 3),
                "writers_blocked": len(blocked),
                "writers_released_within_ms": round(
                    max((w.end_s - h.end_s) * 1000 for w in blocked), 1
                )
                if blocked
                else None,
                "longest_writer_wait_ms": max((w.lat_us for w in blocked), default=0) / 1000,
                "mounts_begun": sum(
                    start <= (c.begin_us + c.mkcg_us) / 1e6 <= h.end_s for c in containers
                ),
                "starts_faulting": sum(
                    c.begin_us / 1e6 <= start and (c.begin_us + c.start_us) / 1e6 >= h.end_s
                    for c in containers
                ),
            }
        )
    return tuple(out)


def _guard(lines: str) -> tuple[dict[str, int], float]:
    actions: dict[str, int] = {}
    closed = 0.0
    prev: tuple[float, str] | None = None
    for line in lines.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or "t" not in rec:
            continue  # the config line and errors
        for act in (rec.get("prepare") or {}).get("done", []):
            if act.get("outcome") == "done":
                actions[act["kind"]] = actions.get(act["kind"], 0) + 1
        if prev is not None and prev[1] == "Closed":
            closed += rec["t"] - prev[0]
        prev = (rec["t"], rec["state"])
    return actions, round(closed, 2)


def measure(scenario: str, index: int, files: Mapping[str, bytes], wall_s: float) -> Run:
    """Measurements of one run from the guest's result files."""

    def text(name: str) -> str:
        return files.get(name, b"").decode(errors="replace")

    if "containers.txt" not in files:
        raise MeasureError("the guest wrote no containers.txt (see its console log)")
    containers, span = parse_containers(text("containers.txt"))
    if span is None or not containers:
        raise MeasureError("containers.txt has no burst summary: the burst did not finish")
    begin_s, end_s = span[0] / 1e6, span[1] / 1e6
    events = [e for e in parse_trace(text("trace.txt")) if begin_s <= e.end_s <= end_s + 1.0]
    holds = [e for e in events if e.event == "shrink_hold"]
    actions, closed = _guard(text("guard.jsonl"))
    ok = [c for c in containers if c.ok]
    return Run(
        scenario=scenario,
        index=index,
        ok=len(ok) == len(containers),
        containers=len(containers),
        failed=len(containers) - len(ok),
        makespan_s=(span[1] - span[0]) / 1e6,
        mount=distribution(c.mount_us for c in ok),
        start=distribution(c.start_us for c in ok),
        umount=distribution(c.umount_us for c in ok),
        mkcg=distribution(c.mkcg_us for c in containers),
        vmstat=vmstat_delta(
            parse_vmstat(text("vmstat.before")), parse_vmstat(text("vmstat.after"))
        ),
        holds=distribution(e.lat_us for e in holds),
        holds_kswapd=distribution(e.lat_us for e in holds if e.comm.startswith("kswapd")),
        writer_waits={
            w: distribution(e.lat_us for e in events if e.event == f"writer_{w}") for w in WRITERS
        },
        mount_lock_waits=distribution(
            e.lat_us
            for e in events
            if e.event in ("writer_prealloc_shrinker", "writer_register_shrinker_prepared")
        ),
        hold_min_prio=min((e.prio for e in holds if e.prio is not None), default=None),
        trace_lost=trace_overruns(text("trace_stats.txt")),
        guard_actions=actions,
        guard_closed_s=closed,
        wall_s=round(wall_s, 1),
        mount_us=tuple(c.mount_us for c in ok),
        start_us=tuple(c.start_us for c in ok),
        hold_us=tuple(e.lat_us for e in holds),
        stalls=_stalls(events, containers),
        prefill=parse_prefill(text("prefill.txt")),
    )


@dataclass(frozen=True)
class Spread:
    """A metric across runs."""

    median: float
    """Median over runs."""
    low: float
    """Smallest run."""
    high: float
    """Largest run."""


def spread(values: Sequence[float]) -> Spread:
    """Median and min-max of per-run values."""
    if not values:
        return Spread(0.0, 0.0, 0.0)
    return Spread(float(statistics.median(values)), float(min(values)), float(max(values)))


def per_10k(count: int, n: int) -> float:
    """A count normalised to 10,000 samples."""
    return 0.0 if n == 0 else count * 10_000 / n


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    """One scenario across its runs: medians with spread, plus pooled distributions."""
    metrics: dict[str, Sequence[float]] = {
        "mount_p50_ms": [r.mount.p50_ms for r in runs],
        "mount_p99_ms": [r.mount.p99_ms for r in runs],
        "mount_p999_ms": [r.mount.p999_ms for r in runs],
        "mount_max_ms": [r.mount.max_ms for r in runs],
        "mount_over_100ms": [r.mount.over_100ms for r in runs],
        "mount_over_1s": [r.mount.over_1s for r in runs],
        "mount_over_100ms_per_10k": [per_10k(r.mount.over_100ms, r.mount.n) for r in runs],
        "start_p50_ms": [r.start.p50_ms for r in runs],
        "start_p99_ms": [r.start.p99_ms for r in runs],
        "start_max_ms": [r.start.max_ms for r in runs],
        "start_over_1s": [r.start.over_1s for r in runs],
        "umount_max_ms": [r.umount.max_ms for r in runs],
        "mkcg_max_ms": [r.mkcg.max_ms for r in runs],
        "makespan_s": [r.makespan_s for r in runs],
        "hold_max_ms": [r.holds.max_ms for r in runs],
        "holds_over_100ms": [r.holds.over_100ms for r in runs],
        "holds_over_1s": [r.holds.over_1s for r in runs],
        "kswapd_hold_max_ms": [r.holds_kswapd.max_ms for r in runs],
        "mount_lock_wait_max_ms": [r.mount_lock_waits.max_ms for r in runs],
        "mount_lock_waits_over_100ms": [r.mount_lock_waits.over_100ms for r in runs],
        "writer_waits_over_100ms": [
            sum(d.over_100ms for d in r.writer_waits.values()) for r in runs
        ],
        "writer_wait_max_ms": [
            max((d.max_ms for d in r.writer_waits.values()), default=0.0) for r in runs
        ],
        **{f"{k}": [float(r.vmstat.get(k, 0)) for r in runs] for k in VMSTAT_KEYS},
        "slab_mb": [r.prefill.slab_mb if r.prefill else 0.0 for r in runs],
        "prefill_s": [r.prefill.files_s + r.prefill.negdent_s if r.prefill else 0.0 for r in runs],
        "wall_s": [r.wall_s for r in runs],
    }
    return {
        "runs": len(runs),
        "metrics": {k: asdict(spread(v)) for k, v in metrics.items()},
        "mount_pooled": asdict(distribution(x for r in runs for x in r.mount_us)),
        "start_pooled": asdict(distribution(x for r in runs for x in r.start_us)),
    }


def run_json(run: Run) -> dict[str, Any]:
    """A run as JSON-able data (raw samples included for re-analysis)."""
    body = asdict(run)
    body["mount_us"] = list(run.mount_us)
    body["start_us"] = list(run.start_us)
    body["hold_us"] = list(run.hold_us)
    return body
