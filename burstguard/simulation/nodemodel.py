"""A SIMULATION of one node's memory under container starts, for kwok nodes.

kwok nodes have no kernel, so ``burstguard demo`` and the scale benchmark need something that
plays the node agent: this model decides what a node's free memory, page cache, kswapd and
(on kernels before 6.7) overlayfs mount stalls would do while pods start on it, and
:func:`summarize` turns that into the same :class:`~burstguard.api.nodesummary.NodeSummary`
the real agent publishes, flagged ``simulated=True`` and ``signal_source="simulation"``.
Nothing here measures a real node; every number it prints is modelled.

The model, one node, one memory zone (watermarks summed as the kernel sums them):

* **Watermarks** follow ``__setup_per_zone_wmarks`` (mm/page_alloc.c):
  ``low = min + max(min/4, managed × wsf/10000)``, ``high = min + 2 × that``. ``min`` is
  ``min_free_kbytes``; its default is the kernel's (``sqrt(16 × lowmem_kB)`` clamped to
  [128 kB, 256 MiB]) raised by THP's recommendation (``set_recommended_min_free_kbytes``:
  11 pageblocks per populated zone, 3 zones, 2 MiB pageblocks = 66 MiB).
  Check: 24 GiB, wsf 10 gives 66/90/114 MiB, which is what reference/host-6.18 measured.
* **A start** costs CPU (``start_overhead_core_s`` plus faulting in its memory at
  ``fault_bytes_per_core_s``) and its memory (``demand_bytes``, kept while it runs: there is
  no swap). Starting pods share the node's cores; an awake kswapd takes one core. Memory is
  faulted in as the work progresses, so demand ramps over the start.
* **Page cache**: the first start of an image on a node reads its layers into the page cache
  (``image_cache_bytes``); other workloads grow it at ``background_cache_bytes_per_s``.
* **kswapd** wakes when free falls below ``low`` and reclaims page cache at
  ``kswapd_reclaim_bytes_per_s`` until free is back above ``high``, then sleeps (one reclaim
  episode). Allocations that would take free below ``min`` enter direct reclaim: each
  allocating task reclaims at ``direct_reclaim_bytes_per_s``, counts one allocation stall per
  step, and the start is throttled to what was reclaimed.
* **Shrinker stall** (pre-6.7 kernels only, ``shrinker_exposed``): a start's overlayfs mount
  that happens while kswapd is awake stalls with probability ``stall_probability`` for a
  log-uniformly drawn ``stall_min_s``..``stall_max_s`` (``alloc_super -> prealloc_shrinker``
  waits for ``shrinker_rwsem`` held by kswapd's ``shrink_slab``).
* **Preparation** (the operator's request, DESIGN §2.4): proactive page-cache reclaim at
  ``proactive_reclaim_bytes_per_s``, not counted as kswapd scanning.

Where each default comes from (reference/host-6.18-bursts.md = "host", 2 vCPU 24 GiB 6.18;
reference/lab-qemu-6.1.md = "lab", 2 vCPU TCG guest on 6.1, ~17x slower than native;
background/incident.txt = "incident"): see each constant's docstring below. Values not
measured anywhere are marked ASSUMPTION.

Pure: time is an argument, randomness comes from a ``random.Random`` the caller seeds and
passes in, and nothing here does I/O.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from burstguard.api import nodesummary

PAGE_SIZE: Final = 4096
"""Bytes per page (x86-64)."""

MIB: Final = 2**20
GIB: Final = 2**30

KSWAPD_RECLAIM_BYTES_PER_S: Final = 1.5e9
"""kswapd reclaim of clean page cache, bytes/s. Host S2: pgscan_kswapd 1.27-2.04 M pages
(5-8 GiB) per 6 GiB burst over a 2.5-4.5 s makespan, "kswapd scanning about 1.5 GB/s";
clean cache only, so scanned ≈ reclaimed."""

DIRECT_RECLAIM_BYTES_PER_S: Final = 0.5e9
"""Reclaim by one allocating task in direct reclaim, bytes/s. Host S2: pgscan_direct
14-29 k pages per burst in 28-150 allocation stalls, i.e. ~0.5-2 MiB per stall; 81 % of
episodes under 128 µs and a tail of 32-262 ms. ASSUMPTION: the rate itself was not measured;
0.5 GB/s (a third of kswapd's) keeps direct reclaim a throttle, not a free lunch."""

PROACTIVE_RECLAIM_BYTES_PER_S: Final = 150e9
"""Preparation's page-cache drop, bytes/s. Host S3a: ``drop_caches=1`` freed ~15 GB in
0.10 s."""

FAULT_BYTES_PER_CORE_S: Final = 0.75e9
"""Anonymous fault-in speed of a starting container per core, bytes/s. Host S1 (no
pressure): 32 × 192 MiB = 6 GiB on 2 vCPU in a 3.0-5.0 s makespan (median 4.3 s, ~0.7 GB/s
per core); S3b K=2: one 192 MiB container ready in 0.2-0.36 s (0.55-1.0 GB/s per core);
touchbench 1.1-2.0 GB/s single-threaded."""

START_OVERHEAD_CORE_S: Final = 0.1
"""CPU work of a container start besides faulting memory (runtime, overlay mount, cgroup),
core-seconds. Incident: "our optimized container creation pipeline normally completes in
about 100ms"."""

KSWAPD_CORES: Final = 0.0
"""CPU kswapd takes from starting pods while awake, cores. Host: the pressure bursts (S2,
kswapd awake) were not slower than the unpressured ones (S1): makespan 3.50 vs 4.33 s median,
6-17 % faster within repetitions, so the measured cost is nil; a Params knob keeps the
mechanism (one kswapd thread per NUMA node) for nodes where it is measured."""

STALL_PROBABILITY: Final = 0.0034
"""Chance that one overlayfs mount stalls while kswapd is awake on a pre-6.7 kernel. Lab
slabburst: 35 of 10 418 mounts over 100 ms (0.34 %), all while kswapd shrank slab; incident:
"roughly 0.2 % of the time". A lower bound per kswapd-awake mount: the lab's denominator
includes mounts while kswapd slept."""

STALL_MIN_S: Final = 0.1
"""Shortest modelled stall, seconds. Lab: stalls counted from 100 ms (TCG) up."""

STALL_MAX_S: Final = 10.0
"""Longest modelled stall, seconds. Incident: "from milliseconds to over 10 seconds"; lab
(container-start shape): shrinker holds of 6.7-10.7 s guest time, mounts waited 1.26-9.3 s."""

IMAGE_CACHE_BYTES: Final = 200 * MIB
"""Page cache the first start of an image fills on a node, bytes. ASSUMPTION: not measured
here (kwok pods have no image); a typical batch image's read working set."""

THP_MIN_FREE_KBYTES: Final = 67584
"""min_free_kbytes THP sets with 2 MiB pageblocks and 3 populated zones (host measured 67584)."""

DEFAULT_WATERMARK_SCALE_FACTOR: Final = 10
"""Kernel default of vm.watermark_scale_factor (Documentation/admin-guide/sysctl/vm.rst)."""

STEP_S: Final = 0.05
"""Largest integration step, seconds (kswapd moves 75 MB in one)."""


def default_min_free_kbytes(memory_bytes: int, thp: bool = True) -> int:
    """The kernel's min_free_kbytes for a node of this size (``init_per_zone_wmark_min``)."""
    lowmem_kb = memory_bytes // 1024
    value = min(max(math.isqrt(lowmem_kb * 16), 128), 262144)
    return max(value, THP_MIN_FREE_KBYTES) if thp else value


@dataclass(frozen=True)
class Watermarks:
    """Σ zone watermarks, bytes."""

    min_bytes: int
    """Direct reclaim below this."""
    low_bytes: int
    """kswapd wakes below this."""
    high_bytes: int
    """kswapd sleeps above this."""


def watermarks(memory_bytes: int, min_free_kbytes: int, scale_factor: int) -> Watermarks:
    """``__setup_per_zone_wmarks`` for one zone holding all memory."""
    minimum = min_free_kbytes * 1024
    gap = max(minimum // 4, memory_bytes * scale_factor // 10000)
    return Watermarks(minimum, minimum + gap, minimum + 2 * gap)


@dataclass(frozen=True)
class Params:
    """One simulated node's hardware, kernel and calibration."""

    memory_bytes: int
    """Managed memory, bytes."""
    cores: float
    """CPU cores."""
    kernel_release: str = "6.18.0-sim"
    """Kernel release the summary reports."""
    shrinker_exposed: bool = False
    """True models a pre-6.7 kernel (global shrinker_rwsem); default False."""
    min_free_kbytes: int | None = None
    """vm.min_free_kbytes, kB; None = kernel default with THP for this size."""
    watermark_scale_factor: int = DEFAULT_WATERMARK_SCALE_FACTOR
    """vm.watermark_scale_factor (1/10000 of memory); default 10."""
    kswapd_reclaim_bytes_per_s: float = KSWAPD_RECLAIM_BYTES_PER_S
    """kswapd reclaim speed, bytes/s."""
    direct_reclaim_bytes_per_s: float = DIRECT_RECLAIM_BYTES_PER_S
    """Direct reclaim speed per allocating task, bytes/s."""
    proactive_reclaim_bytes_per_s: float = PROACTIVE_RECLAIM_BYTES_PER_S
    """Preparation reclaim speed, bytes/s."""
    fault_bytes_per_core_s: float = FAULT_BYTES_PER_CORE_S
    """Fault-in speed per core, bytes/s."""
    start_overhead_core_s: float = START_OVERHEAD_CORE_S
    """CPU work of a start besides its memory, core-seconds."""
    image_cache_bytes: int = IMAGE_CACHE_BYTES
    """Page cache filled by the first start of an image, bytes."""
    background_cache_bytes_per_s: float = 0.0
    """Page cache growth from other workloads, bytes/s; default 0."""
    stall_probability: float = STALL_PROBABILITY
    """Chance per mount while kswapd is awake (exposed kernels only)."""
    stall_min_s: float = STALL_MIN_S
    """Shortest stall, seconds."""
    stall_max_s: float = STALL_MAX_S
    """Longest stall, seconds."""
    kswapd_cores: float = KSWAPD_CORES
    """CPU kswapd takes from starts while awake, cores; default 0 (host measurement)."""

    @functools.cached_property
    def marks(self) -> Watermarks:
        """The node's watermarks (computed once: the model's hottest lookup)."""
        mfk = self.min_free_kbytes or default_min_free_kbytes(self.memory_bytes)
        return watermarks(self.memory_bytes, mfk, self.watermark_scale_factor)


@dataclass(frozen=True)
class Start:
    """One container start in progress."""

    key: str
    """Pod ``namespace/name``."""
    began_at: float
    """When the start began, seconds."""
    demand_bytes: int
    """Memory the container faults in while starting, bytes."""
    work_core_s: float
    """Total CPU work of the start, core-seconds."""
    done_core_s: float = 0.0
    """CPU work done so far, core-seconds."""
    faulted_bytes: int = 0
    """Memory faulted in so far, bytes."""
    mounted: bool = False
    """The overlayfs mount happened."""
    blocked_until: float = 0.0
    """Stalled behind the shrinker lock until then, seconds."""
    stalled_s: float = 0.0
    """Time lost to the stall, seconds."""


@dataclass(frozen=True)
class Counters:
    """Monotonic counters, like /proc/vmstat's, plus model outcomes."""

    pgscan_kswapd: int = 0
    """Pages scanned (= reclaimed, clean cache) by kswapd."""
    pgscan_direct: int = 0
    """Pages scanned in direct reclaim."""
    allocstall: int = 0
    """Allocation stalls (one per allocating task per step in direct reclaim)."""
    kswapd_wakes: int = 0
    """kswapd wake-ups = reclaim episodes."""
    stalls: int = 0
    """Modelled shrinker_rwsem mount stalls."""
    stall_seconds: float = 0.0
    """Σ stall durations, seconds."""
    max_stall_s: float = 0.0
    """Longest stall, seconds."""
    starts_done: int = 0
    """Starts completed."""
    max_starting: int = 0
    """Most starts in progress at once."""
    kswapd_awake_s: float = 0.0
    """Time kswapd was awake, seconds."""


@dataclass(frozen=True)
class Started:
    """A start that completed in a step: the pod's containers are running."""

    key: str
    """Pod ``namespace/name``."""
    at: float
    """When it completed, seconds."""
    duration_s: float
    """Start duration, seconds."""
    stalled_s: float
    """Part of it spent stalled, seconds."""


@dataclass(frozen=True)
class State:
    """One node's modelled memory at ``at``."""

    at: float
    """Model time, seconds."""
    free_bytes: int
    """Free memory, bytes."""
    cache_bytes: int
    """Reclaimable page cache, bytes."""
    anon_bytes: int
    """Unreclaimable memory (running pods, system), bytes."""
    starts: tuple[Start, ...] = ()
    """Starts in progress."""
    running: tuple[tuple[str, int], ...] = ()
    """Running pods and the memory each holds, bytes."""
    images: frozenset[str] = frozenset()
    """Images whose layers are in the page cache."""
    kswapd_awake: bool = False
    """kswapd is reclaiming."""
    prepare_left_bytes: int = 0
    """Proactive reclaim still to do for a preparation request, bytes."""
    counters: Counters = field(default_factory=Counters)
    """Counters since the node was created."""

    @property
    def starting(self) -> int:
        """Starts in progress."""
        return len(self.starts)


def initial(params: Params, now: float, free_bytes: int, cache_bytes: int) -> State:
    """A node at ``now`` with that much free memory and page cache; the rest is unreclaimable."""
    anon = max(0, params.memory_bytes - free_bytes - cache_bytes)
    return State(at=now, free_bytes=free_bytes, cache_bytes=cache_bytes, anon_bytes=anon)


def start(
    state: State, params: Params, key: str, demand_bytes: int, *, now: float, image: str = ""
) -> State:
    """Begin a container start (the pod was bound to the node and the kubelet picked it up)."""
    if any(s.key == key for s in state.starts) or any(k == key for k, _ in state.running):
        return state
    work = params.start_overhead_core_s + demand_bytes / params.fault_bytes_per_core_s
    item = Start(key=key, began_at=now, demand_bytes=demand_bytes, work_core_s=work)
    images = state.images
    cache, free = state.cache_bytes, state.free_bytes
    if image and image not in images:
        images = images | {image}
        cache += params.image_cache_bytes
        free -= params.image_cache_bytes  # read now; kswapd settles the debt on the next step
    starts = (*state.starts, item)
    counters = replace(state.counters, max_starting=max(state.counters.max_starting, len(starts)))
    return replace(
        state, starts=starts, images=images, cache_bytes=cache, free_bytes=free, counters=counters
    )


def stop(state: State, key: str) -> State:
    """The pod is gone (completed or deleted): its memory returns to free."""
    freed = sum(b for k, b in state.running if k == key)
    freed += sum(s.faulted_bytes for s in state.starts if s.key == key)
    if not freed and not any(s.key == key for s in state.starts):
        return state
    return replace(
        state,
        running=tuple((k, b) for k, b in state.running if k != key),
        starts=tuple(s for s in state.starts if s.key != key),
        anon_bytes=state.anon_bytes - freed,
        free_bytes=state.free_bytes + freed,
    )


def prepare(state: State, bytes_wanted: int) -> State:
    """Accept a preparation request: proactively reclaim that much page cache."""
    return replace(state, prepare_left_bytes=max(state.prepare_left_bytes, bytes_wanted))


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _step(
    state: State, params: Params, dt: float, rng: random.Random, done: list[Started]
) -> State:
    marks = params.marks
    now = state.at + dt
    free, cache, anon = state.free_bytes, state.cache_bytes, state.anon_bytes
    c = state.counters
    awake = state.kswapd_awake

    # Mounts happen when a start first runs; on exposed kernels a mount while kswapd shrinks
    # slab may wait behind shrinker_rwsem.
    starts: list[Start] = []
    for pending in state.starts:
        s = pending
        if not s.mounted and s.blocked_until <= state.at:
            if params.shrinker_exposed and awake and rng.random() < params.stall_probability:
                stall = _log_uniform(rng, params.stall_min_s, params.stall_max_s)
                c = replace(
                    c,
                    stalls=c.stalls + 1,
                    stall_seconds=c.stall_seconds + stall,
                    max_stall_s=max(c.max_stall_s, stall),
                )
                s = replace(s, blocked_until=state.at + stall, stalled_s=stall)
            s = replace(s, mounted=True)
        starts.append(s)

    active = [i for i, s in enumerate(starts) if s.blocked_until <= state.at]
    cpu = max(params.cores - (params.kswapd_cores if awake else 0.0), params.cores * 0.25)
    share = min(1.0, cpu / len(active)) if active else 0.0
    overhead = params.start_overhead_core_s
    needs: dict[int, int] = {}
    progress: dict[int, float] = {}
    for i in active:
        s = starts[i]
        work = min(s.work_core_s, s.done_core_s + share * dt)
        fault_work = max(0.0, s.work_core_s - overhead)
        fraction = 1.0 if fault_work <= 0 else max(0.0, work - overhead) / fault_work
        target = s.demand_bytes if work >= s.work_core_s else int(s.demand_bytes * fraction)
        progress[i] = work
        needs[i] = max(0, target - s.faulted_bytes)
    background = int(params.background_cache_bytes_per_s * dt)
    total = sum(needs.values()) + background

    # Allocation: above min it just succeeds; below, the allocating tasks reclaim directly.
    grant = 1.0
    if total > 0 and free - total < marks.min_bytes:
        allocating = sum(1 for n in needs.values() if n > 0) + (1 if background else 0)
        reclaimed = min(cache, int(params.direct_reclaim_bytes_per_s * allocating * dt))
        cache -= reclaimed
        free += reclaimed
        c = replace(
            c,
            pgscan_direct=c.pgscan_direct + reclaimed // PAGE_SIZE,
            allocstall=c.allocstall + allocating,
        )
        grant = max(0.0, min(1.0, (free - marks.min_bytes) / total))
    for i, need in needs.items():
        s = starts[i]
        got = int(need * grant)
        if grant < 1.0 and need > 0:
            # Throttled: only the part of the work whose memory was granted happened.
            work = s.done_core_s + (progress[i] - s.done_core_s) * grant
        else:
            work = progress[i]
        free -= got
        anon += got
        starts[i] = replace(s, done_core_s=work, faulted_bytes=s.faulted_bytes + got)
    got_bg = int(background * grant)
    free -= got_bg
    cache += got_bg

    # Preparation: proactive reclaim of page cache (not kswapd, not counted as scanning).
    prepare_left = state.prepare_left_bytes
    if prepare_left > 0:
        freed = min(prepare_left, cache, int(params.proactive_reclaim_bytes_per_s * dt))
        cache -= freed
        free += freed
        prepare_left = 0 if cache == 0 else prepare_left - freed

    # kswapd: wake below low, reclaim page cache until free is above high.
    if not awake and free < marks.low_bytes:
        awake = True
        c = replace(c, kswapd_wakes=c.kswapd_wakes + 1)
    if awake:
        c = replace(c, kswapd_awake_s=c.kswapd_awake_s + dt)
        want = max(0, marks.high_bytes - free)
        reclaimed = min(cache, want, int(params.kswapd_reclaim_bytes_per_s * dt))
        cache -= reclaimed
        free += reclaimed
        c = replace(c, pgscan_kswapd=c.pgscan_kswapd + reclaimed // PAGE_SIZE)
        if free >= marks.high_bytes:
            awake = False

    running = list(state.running)
    remaining: list[Start] = []
    for s in starts:
        if s.done_core_s >= s.work_core_s - 1e-12 and s.faulted_bytes >= s.demand_bytes:
            running.append((s.key, s.faulted_bytes))
            done.append(Started(s.key, now, now - s.began_at, s.stalled_s))
            c = replace(c, starts_done=c.starts_done + 1)
        else:
            remaining.append(s)
    return State(
        at=now,
        free_bytes=free,
        cache_bytes=cache,
        anon_bytes=anon,
        starts=tuple(remaining),
        running=tuple(running),
        images=state.images,
        kswapd_awake=awake,
        prepare_left_bytes=prepare_left,
        counters=c,
    )


def _quiet(state: State, params: Params) -> bool:
    """Nothing can change: no starts, kswapd asleep, no growth, no preparation pending."""
    return (
        not state.starts
        and not state.kswapd_awake
        and state.prepare_left_bytes == 0
        and params.background_cache_bytes_per_s == 0
        and state.free_bytes >= params.marks.low_bytes
    )


def advance(
    state: State, params: Params, now: float, rng: random.Random
) -> tuple[State, tuple[Started, ...]]:
    """Run the model forward to ``now`` in steps of at most STEP_S; returns completed starts."""
    done: list[Started] = []
    while state.at < now - 1e-9:
        if _quiet(state, params):
            return replace(state, at=now), tuple(done)
        state = _step(state, params, min(STEP_S, now - state.at), rng, done)
    return state, tuple(done)


def headroom_bytes(state: State, params: Params, reserve_bytes: int = 0) -> int:
    """free − high − reserve, as the agent computes it (core.headroom), bytes."""
    return state.free_bytes - params.marks.high_bytes - reserve_bytes


def summarize(
    state: State,
    params: Params,
    previous: Counters,
    *,
    elapsed_s: float,
    now: float,
    reserve_bytes: int = 0,
) -> nodesummary.NodeSummary:
    """The summary the agent would publish (flagged simulated); rates since ``previous``."""
    c = state.counters
    dt = max(elapsed_s, 1e-9)
    rates = nodesummary.ReclaimRates(
        pgscan_kswapd=(c.pgscan_kswapd - previous.pgscan_kswapd) / dt,
        pgscan_direct=(c.pgscan_direct - previous.pgscan_direct) / dt,
        allocstall=(c.allocstall - previous.allocstall) / dt,
    )
    headroom = headroom_bytes(state, params, reserve_bytes)
    reasons: list[str] = []
    if headroom <= 0:
        reasons.append("headroom-low")
    if state.kswapd_awake or rates.pgscan_kswapd > 0:
        reasons.append("kswapd-scanning")
    if rates.allocstall > 0:
        reasons.append("direct-reclaim")
    new_stalls = c.stalls - previous.stalls
    lock_wait = None
    if params.shrinker_exposed:
        lock_wait = c.max_stall_s if new_stalls > 0 else 0.0
        if new_stalls > 0:
            reasons.append("mount-stall")
    return nodesummary.NodeSummary(
        sampled_at=now,
        state="Closed" if reasons else "Open",
        headroom_bytes=headroom,
        reclaimable_bytes=state.cache_bytes,
        rates=rates,
        reasons=tuple(reasons),
        kernel_release=params.kernel_release,
        shrinker_exposed=params.shrinker_exposed,
        lock_wait_p99_s=lock_wait,
        mount_p99_s=lock_wait,
        starting_demand_bytes=sum(s.demand_bytes - s.faulted_bytes for s in state.starts),
        signal_source="simulation",
        degraded_reason="simulated node: modelled memory, not measured",
        simulated=True,
    )


# --- fleets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetProfile:
    """How to draw a simulated fleet."""

    memory_bytes: int = 16 * GIB
    """Memory per node, bytes; default 16 GiB."""
    cores: float = 4.0
    """Cores per node; default 4."""
    exposed_fraction: float = 0.5
    """Share of nodes on a pre-6.7 kernel; default half."""
    exposed_release: str = "6.1.0-sim"
    """Kernel release of exposed nodes."""
    fixed_release: str = "6.18.0-sim"
    """Kernel release of the others."""
    headroom_min_bytes: int = 256 * MIB
    """Least free memory above ``high`` at start, bytes (a long-running node: page cache
    fills the rest, host S2 "primed")."""
    headroom_max_bytes: int = 2 * GIB
    """Most free memory above ``high`` at start, bytes."""
    cache_fraction: float = 0.5
    """Share of memory that is reclaimable page cache at start."""


def fleet(
    count: int, profile: FleetProfile, rng: random.Random, now: float, prefix: str = "sim-"
) -> dict[str, tuple[Params, State]]:
    """``count`` nodes named ``<prefix><i>``, kernels and headroom drawn from ``rng``."""
    exposed_count = round(count * profile.exposed_fraction)
    exposed = set(rng.sample(range(count), exposed_count))
    nodes: dict[str, tuple[Params, State]] = {}
    for i in range(count):
        is_exposed = i in exposed
        params = Params(
            memory_bytes=profile.memory_bytes,
            cores=profile.cores,
            kernel_release=profile.exposed_release if is_exposed else profile.fixed_release,
            shrinker_exposed=is_exposed,
        )
        free = params.marks.high_bytes + rng.randint(
            profile.headroom_min_bytes, profile.headroom_max_bytes
        )
        cache = int(profile.memory_bytes * profile.cache_fraction)
        nodes[f"{prefix}{i}"] = (params, initial(params, now, free, cache))
    return nodes


def outcome(states: Mapping[str, State]) -> dict[str, float]:
    """Fleet totals of the model's outcome counters."""
    values = list(states.values())
    return {
        "nodes_entered_reclaim": float(sum(1 for s in values if s.counters.kswapd_wakes > 0)),
        "kswapd_wakes": float(sum(s.counters.kswapd_wakes for s in values)),
        "allocstall": float(sum(s.counters.allocstall for s in values)),
        "stalls": float(sum(s.counters.stalls for s in values)),
        "stall_seconds": sum(s.counters.stall_seconds for s in values),
        "max_starting_per_node": float(max((s.counters.max_starting for s in values), default=0)),
    }
