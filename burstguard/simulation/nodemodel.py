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
  no swap). Starting pods share the node's cores (at most one each); an awake kswapd takes
  ``kswapd_reclaim_bytes_per_s / kswapd_bytes_per_core_s`` cores from them. Memory is
  faulted in as the work progresses, so demand ramps over the start.
* **Page cache**: the first start of an image on a node reads its layers into the page cache
  (``image_cache_bytes``); other workloads grow it at ``background_cache_bytes_per_s``.
* **kswapd** wakes at the moment free memory crosses ``low`` (interpolated within a step) and
  reclaims page cache at ``kswapd_reclaim_bytes_per_s`` until free is back above ``high``,
  then sleeps (one reclaim episode).
* **Direct reclaim**: only what kswapd cannot cover before free would fall below ``min`` is
  reclaimed by the allocating tasks, through one shared throughput
  (``direct_reclaim_bytes_per_s``): every allocating task waits for the whole shortfall, so
  the stall grows with the shortfall and the starts lose that time. Allocation stalls are
  counted per ``direct_reclaim_bytes_per_allocstall`` reclaimed, so no count depends on the
  step.
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
"""Direct-reclaim throughput of the node, shared by every task in direct reclaim, bytes/s
(the kernel throttles concurrent direct reclaimers: ``too_many_isolated``,
``reclaim_throttle``). Host S2: pgscan_direct 14-29 k pages per burst in 28-150 allocation
stalls; 81 % of episodes under 128 µs and a tail of 32-262 ms with 32 tasks allocating, which
pacing to 2 starts cut to 0.6 ms (S3b). ASSUMPTION: the throughput itself was not measured;
0.5 GB/s (a third of kswapd's) makes a 32-task stall of ~16 MiB last ~30 ms, the host's
tail."""

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

KSWAPD_BYTES_PER_CORE_S: Final = 15e9
"""CPU cost of kswapd's reclaim of clean page cache, bytes per core-second: while awake,
kswapd takes ``kswapd_reclaim_bytes_per_s / this`` cores (0.1) from starting pods. Host: S2 (kswapd
awake, 5-8 GiB scanned) was not slower than S1 (makespan 3.50 vs 4.33 s median, S2 at most
4.53 s), so the cost is small; ASSUMPTION: a tenth of a core, the most that keeps the
modelled S2 makespan (S1's 4.3 s x 2 / (2 - cost)) inside the host's range."""

DIRECT_RECLAIM_BYTES_PER_ALLOCSTALL: Final = 1_773_568
"""Bytes a task reclaims per allocation stall (one ``try_to_free_pages`` call). Host S2:
pgscan_direct median 19 929 pages over median 46 allocstalls = 433 pages = 1.7 MiB (per-run
0.4-2 MiB)."""

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
"""Default largest integration step, seconds. Results do not depend on it: 0.01 and 0.05 agree
within 10 % on every calibration burst (test_nodemodel)."""


MIN_STEP_S: Final = 0.001
"""Shortest step, seconds: a start finishing within it is late by at most this much."""


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
    """Direct reclaim throughput shared by the allocating tasks, bytes/s."""
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
    kswapd_bytes_per_core_s: float = KSWAPD_BYTES_PER_CORE_S
    """CPU cost of kswapd's reclaim, bytes per core-second."""
    direct_reclaim_bytes_per_allocstall: int = DIRECT_RECLAIM_BYTES_PER_ALLOCSTALL
    """Bytes reclaimed per allocation stall."""

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
    """Allocation stalls: direct-reclaimed bytes / ``direct_reclaim_bytes_per_allocstall``."""
    kswapd_wakes: int = 0
    """kswapd wake-ups = reclaim episodes."""
    stalls: int = 0
    """Modelled shrinker_rwsem mount stalls."""
    stall_seconds: float = 0.0
    """Σ stall durations, seconds."""
    max_stall_s: float = 0.0
    """Longest stall, seconds."""
    stall_log: tuple[float, ...] = ()
    """Every stall's duration in order, seconds (stalls are rare: 0.3 % of mounts)."""
    starts_done: int = 0
    """Starts completed."""
    max_starting: int = 0
    """Most starts in progress at once."""
    kswapd_awake_s: float = 0.0
    """Time kswapd was awake, seconds."""
    direct_reclaim_bytes: int = 0
    """Bytes reclaimed by allocating tasks themselves."""
    direct_reclaim_s: float = 0.0
    """Σ time allocating tasks spent in direct reclaim, task-seconds."""
    first_kswapd_wake_at: float | None = None
    """Model time kswapd first woke, seconds; None = never."""
    first_direct_reclaim_at: float | None = None
    """Model time of the first direct reclaim, seconds; None = never."""


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


def drop_page_cache(state: State) -> State:
    """``echo 1 > drop_caches``: every clean page-cache byte becomes free at once."""
    return replace(state, free_bytes=state.free_bytes + state.cache_bytes, cache_bytes=0)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _mount(
    state: State, params: Params, rng: random.Random, c: Counters
) -> tuple[list[Start], Counters]:
    """Mounts happen when a start first runs; on exposed kernels a mount while kswapd shrinks
    slab may wait behind shrinker_rwsem (one draw per mount, whatever the step)."""
    starts: list[Start] = []
    for pending in state.starts:
        s = pending
        if not s.mounted and s.blocked_until <= state.at:
            if (
                params.shrinker_exposed
                and state.kswapd_awake
                and (rng.random() < params.stall_probability)
            ):
                stall = _log_uniform(rng, params.stall_min_s, params.stall_max_s)
                c = replace(
                    c,
                    stalls=c.stalls + 1,
                    stall_seconds=c.stall_seconds + stall,
                    max_stall_s=max(c.max_stall_s, stall),
                    stall_log=(*c.stall_log, stall),
                )
                s = replace(s, blocked_until=state.at + stall, stalled_s=stall)
            s = replace(s, mounted=True)
        starts.append(s)
    return starts, c


def _share(state: State, params: Params, active: int) -> float:
    """Cores each running start gets: the node's cores less kswapd's, split evenly (at most
    one core per start: a start is one thread faulting its memory)."""
    if not active:
        return 0.0
    kswapd = params.kswapd_reclaim_bytes_per_s / params.kswapd_bytes_per_core_s
    cpu = params.cores - (kswapd if state.kswapd_awake else 0.0)
    return min(1.0, max(cpu, params.cores * 0.25) / active)


def _fault_target(s: Start, params: Params, work: float) -> int:
    """Bytes a start has faulted in once it has done ``work`` core-seconds (memory is faulted
    as the work progresses, after the fixed overhead)."""
    if work >= s.work_core_s:
        return s.demand_bytes
    fault_work = s.work_core_s - params.start_overhead_core_s
    if fault_work <= 0:
        return s.demand_bytes
    return int(s.demand_bytes * max(0.0, work - params.start_overhead_core_s) / fault_work)


def _step_length(state: State, params: Params, step_s: float, share: float) -> float:
    """The step, cut short at the next start's completion at the current rates, so a start
    finishes (and its slot frees) at its own time rather than at the end of a step."""
    dt = step_s
    for s in state.starts:
        if s.blocked_until > state.at:
            dt = min(dt, s.blocked_until - state.at)
        elif share > 0 and s.done_core_s < s.work_core_s:
            dt = min(dt, (s.work_core_s - s.done_core_s) / share)
    # A throttled start finishes later than predicted; never crawl after it in tiny steps.
    return max(dt, min(step_s, MIN_STEP_S))


def _step(
    state: State, params: Params, step_s: float, rng: random.Random, done: list[Started]
) -> State:
    """One step of length at most ``step_s``, integrated as if the rates held through it.

    Within the step the starts allocate at a constant rate. kswapd wakes at the moment free
    memory crosses ``low`` (interpolated inside the step, not at its end) and reclaims from then
    on; only what it cannot cover below ``min`` is left to direct reclaim. So one step never
    jumps the low->min band, and kswapd always wakes before direct reclaim, as in the kernel
    (``__alloc_pages_slowpath`` calls ``wake_all_kswapds`` before
    ``__alloc_pages_direct_reclaim``).
    """
    marks = params.marks
    c = state.counters
    starts, c = _mount(state, params, rng, c)
    active = [i for i, s in enumerate(starts) if s.blocked_until <= state.at]
    share = _share(state, params, len(active))
    dt = _step_length(replace(state, starts=tuple(starts)), params, step_s, share)
    now = state.at + dt
    free, cache, anon = state.free_bytes, state.cache_bytes, state.anon_bytes

    needs: dict[int, int] = {}
    for i in active:
        s = starts[i]
        work = min(s.work_core_s, s.done_core_s + share * dt)
        needs[i] = max(0, _fault_target(s, params, work) - s.faulted_bytes)
    background = int(params.background_cache_bytes_per_s * dt)
    demand = sum(needs.values()) + background

    # Preparation: proactive reclaim of page cache (not kswapd, not counted as scanning).
    prepare_left = state.prepare_left_bytes
    if prepare_left > 0:
        freed = min(prepare_left, cache, int(params.proactive_reclaim_bytes_per_s * dt))
        cache -= freed
        free += freed
        prepare_left = 0 if cache == 0 else prepare_left - freed

    # kswapd: awake from the moment free crosses low within the step.
    awake = state.kswapd_awake
    woke_after = 0.0
    if not awake:
        if free < marks.low_bytes:
            awake = True
        elif demand > 0 and free - demand < marks.low_bytes:
            awake = True
            woke_after = dt * (free - marks.low_bytes) / demand
        if awake:
            c = replace(c, kswapd_wakes=c.kswapd_wakes + 1)
            if c.first_kswapd_wake_at is None:
                c = replace(c, first_kswapd_wake_at=state.at + woke_after)
    kswapd = 0
    if awake:
        budget = int(params.kswapd_reclaim_bytes_per_s * (dt - woke_after))
        # kswapd stops once free is back at high (it reclaims against the allocations).
        kswapd = max(0, min(cache, budget, marks.high_bytes - (free - demand)))
        cache -= kswapd
        free += kswapd
        c = replace(
            c,
            kswapd_awake_s=c.kswapd_awake_s + dt - woke_after,
            pgscan_kswapd=c.pgscan_kswapd + kswapd // PAGE_SIZE,
        )

    # Direct reclaim: what would take free below min is reclaimed by the allocating tasks
    # themselves, through one shared reclaim throughput, so every allocating task waits for
    # the whole shortfall: the stall grows with the shortfall. A task that waits T seconds of
    # the step progresses (dt - T) / dt of it; solving shortfall(g) = R x T(g) for the progress
    # g gives g = (R dt + free - min) / (R dt + demand).
    grant = 1.0
    direct = 0
    if demand > 0 and free - demand < marks.min_bytes:
        rate_dt = params.direct_reclaim_bytes_per_s * dt
        grant = max(0.0, min(1.0, (rate_dt + free - marks.min_bytes) / (rate_dt + demand)))
        direct = min(cache, max(0, marks.min_bytes - (free - int(demand * grant))))
        cache -= direct
        free += direct
        # Without cache to reclaim (no swap) allocations get only what is left above min.
        grant = max(0.0, min(grant, (free - marks.min_bytes) / demand))
        reclaimed_total = c.direct_reclaim_bytes + direct
        waited = direct / params.direct_reclaim_bytes_per_s
        allocating = sum(1 for n in needs.values() if n > 0) + (1 if background else 0)
        c = replace(
            c,
            direct_reclaim_bytes=reclaimed_total,
            pgscan_direct=reclaimed_total // PAGE_SIZE,
            allocstall=reclaimed_total // params.direct_reclaim_bytes_per_allocstall,
            direct_reclaim_s=c.direct_reclaim_s + waited * allocating,
        )
        if direct and c.first_direct_reclaim_at is None:
            c = replace(c, first_direct_reclaim_at=now)

    for i, need in needs.items():
        s = starts[i]
        got = int(need * grant)
        work = min(s.work_core_s, s.done_core_s + share * dt * grant)
        if grant >= 1.0:
            got = need
        free -= got
        anon += got
        starts[i] = replace(s, done_core_s=work, faulted_bytes=s.faulted_bytes + got)
    got_bg = int(background * grant)
    free -= got_bg
    cache += got_bg
    if awake and free >= marks.high_bytes:
        awake = False

    running = list(state.running)
    remaining: list[Start] = []
    for s in starts:
        if s.done_core_s >= s.work_core_s - 1e-9 and s.faulted_bytes >= s.demand_bytes:
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
    state: State,
    params: Params,
    now: float,
    rng: random.Random,
    *,
    step_s: float = STEP_S,
    until_started: bool = False,
) -> tuple[State, tuple[Started, ...]]:
    """Run the model forward to ``now`` in steps of at most ``step_s``; returns the completed
    starts. ``until_started`` stops at the first completion (``state.at`` is then its time), so
    a caller can release the next start at the moment a slot frees, as a runtime does."""
    done: list[Started] = []
    while state.at < now - 1e-9:
        if _quiet(state, params):
            return replace(state, at=now), tuple(done)
        state = _step(state, params, min(step_s, now - state.at), rng, done)
        if until_started and done:
            break
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
    # The window's worst stall, as the agent's BPF window p99 (not the lifetime maximum).
    recent = c.stall_log[len(previous.stall_log) :]
    lock_wait = None
    if params.shrinker_exposed:
        lock_wait = max(recent, default=0.0)
        if recent:
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
