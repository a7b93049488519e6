"""The lab's scenarios: one node, one container-start burst, under the incident's pressure.

Every scenario runs the same workload in a 3 GiB, 2-vCPU guest: half of its memory in one
reclaimable slab list (negative dentries with names long enough for a separate name
allocation, plus empty files, all in the root memory cgroup), an anonymous hog (no swap)
leaving little page cache, page cache that keeps growing during the burst, and a burst of
container starts, more at once than the guest has vCPUs, each a memory cgroup, an overlay
mount of several lower layers and a short-lived process faulting in memory, large and small
starts alternating. Little page cache and fast anonymous growth drive kswapd's priority down,
and each lower priority scans twice as much of the one list under ``shrinker_rwsem``; the
small starts keep slots turning over, so cgroups, mounts and umounts need the lock meanwhile.
Scenarios differ only in who guards the node:

* ``unguarded`` — the runtime starts a container whenever a slot is free (8 at once).
* ``guarded`` — burstguard's node logic in the guest: pacing (1 start per core), node state
  with hysteresis, preparation (targeted ``memory.reclaim`` of the writer's cgroup, then clean
  page cache) when headroom is short of the imminent demand.
* ``drop-cache-only`` — preparation alone, page cache only (no cgroup target, no pacing).
* ``pacing-only`` — pacing and node state alone, no preparation.
* ``wsf`` — unguarded with ``vm.watermark_scale_factor=1000`` (kswapd wakes earlier).
* ``control`` — the same burst without any memory pressure: what 8 concurrent starts cost on
  2 emulated vCPUs alone (mount latency here is mostly CPU, not the lock).

:data:`QUICK` (``--quick``, the smoke test) shrinks every size so a boot plus a tiny burst fits
in a test; it reproduces nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Final


@dataclass(frozen=True)
class Workload:
    """What the guest does, in the guest's units."""

    memory_mb: int = 3072
    """Guest RAM, MiB: large enough that half of it can be one reclaimable slab list."""
    files: int = 50_000
    """Empty files created before the burst (ext4 inodes + dentries), count."""
    negative_dentries: int = 8_000_000
    """stat() misses before the burst (negative dentries) at most, count."""
    name_len: int = 40
    """Length of the negative dentries' names: over 32 characters the name is a separate
    reclaimable kmalloc (40: 64 bytes), so each dentry holds ~256 bytes. A hold scans a
    fraction (2/2^priority) of the list's *objects*, so for the same slab size longer names
    (240: ~700 bytes, a third of the fill time) gave holds a third as long; 40 keeps ~6.5M
    objects in the list."""
    slab_mb: int = 1600
    """Stop the negative-dentry fill once SReclaimable reaches this, MiB (0: no target)."""
    hog_mb: int | None = None
    """Anonymous memory held through the run, MiB (there is no swap); None sizes it to leave
    ``cache_mb`` of page cache."""
    cache_mb: int = 256
    """Clean page cache left when the hog is sized automatically, MiB: little, so kswapd finds
    little but slab to reclaim and its priority drops, yet enough for the guard to make room
    for one 168 MiB start (at 192 MiB its headroom topped out at 183 MiB, under the 202 MiB
    it reopens at, and the guarded burst never started)."""
    leave_mb: int = 32
    """Free memory above the summed high watermarks when the burst starts, MiB; the rest is
    clean page cache in the ``lab/io`` cgroup."""
    dd_mb: int = 4000
    """Page cache added during the burst at most, MiB (stopped when the burst ends)."""
    dd_rate_mb: int = 4
    """Page cache added every half second during the burst, MiB."""
    grow_mb: int = 0
    """Anonymous memory the node's running pods add from the burst's start, MiB (0: none).
    Ungated and in no start slot: the pressure a node's running pods put on it while new
    pods keep starting, so mounts go on while kswapd reclaims. Off by default: on a quiet
    host the shapes tried with it gave shorter holds (LAB.md, "Why these sizes")."""
    grow_rate_mb: int = 16
    """How fast the running pods grow, MiB per second."""
    containers: int = 120
    """Containers in the burst."""
    slots: int = 8
    """Containers running at once (the node's pod capacity): more than the guest's vCPUs, so
    the burst itself contends for CPU. A container's slot frees when its process exits; its
    teardown (umount, cgroup removal) runs after, outside the slot, as a kubelet's does."""
    container_mb: int = 160
    """Anonymous memory each even-numbered container faults in, MiB: four at once outrun
    kswapd, whose priority then falls pass by pass (each pass scans twice as much of the slab
    list)."""
    small_mb: int = 8
    """Anonymous memory every odd-numbered container faults in instead, MiB (-1: all
    ``container_mb``). Small starts finish while the large ones are still faulting, so some
    slots keep turning over, and their umounts and the next starts' cgroups and mounts need
    the lock while kswapd holds it. With all 8 slots taken by large starts stalled in
    reclaim, seconds-long holds blocked no writer (LAB.md, "Looking for writer waits")."""
    hold_ms: int = 200
    """How long each container runs after it started, ms: short tasks, so slots turn over
    during a hold."""
    layers: int = 4
    """Lower layers in each overlay mount."""
    trace_min_us: int = 1000
    """Shortest shrinker hold / writer wait kept in the trace buffer, µs (all go to a hist)."""


QUICK: Final = Workload(
    memory_mb=1024,
    files=2000,
    negative_dentries=20_000,
    slab_mb=0,
    hog_mb=0,
    leave_mb=600,
    dd_mb=16,
    containers=6,
    slots=3,
    container_mb=4,
    small_mb=1,
    hold_ms=50,
    trace_min_us=0,
    grow_mb=0,
)
"""The ``--quick`` shape (the CI smoke test): a 1 GiB guest, a tiny slab, no pressure, six
containers; boots, mounts, traces and guards in a few minutes, reproduces nothing."""


@dataclass(frozen=True)
class Scenario:
    """One way of running the burst."""

    name: str
    """Identifier used on the command line and in the report."""
    title: str
    """One line for the report."""
    guard: str = "none"
    """Guard mode in the guest: ``none``, ``full``, ``pace`` or ``prepare``."""
    reclaim_cgroups: tuple[str, ...] = ()
    """cgroups the guard may reclaim from (targeted memory.reclaim)."""
    watermark_scale_factor: int | None = None
    """vm.watermark_scale_factor to set before the burst; None keeps the default (10)."""
    workload: Workload = Workload()
    """Sizes."""
    pressure: bool = True
    """Whether the node is under memory pressure; ``--set`` leaves the pressure sizes of a
    scenario without it (the control) alone."""


IO_CGROUP: Final = "/sys/fs/cgroup/lab/io"
"""The memory cgroup of the page-cache writer inside the guest."""

SCENARIOS: Final = {
    s.name: s
    for s in (
        Scenario("unguarded", "no guard: the runtime starts whenever a slot is free"),
        Scenario(
            "guarded",
            "burstguard: pacing + node state + preparation (cgroup reclaim, then page cache)",
            guard="full",
            reclaim_cgroups=(IO_CGROUP,),
        ),
        Scenario("drop-cache-only", "preparation only, clean page cache only", guard="prepare"),
        Scenario("pacing-only", "pacing and node state only, no preparation", guard="pace"),
        Scenario("wsf", "unguarded, watermark_scale_factor=1000", watermark_scale_factor=1000),
        Scenario(
            "control",
            "unguarded, no memory pressure (no slab prefill, hog or dd): CPU contention alone",
            workload=Workload(
                files=0,
                negative_dentries=0,
                slab_mb=0,
                hog_mb=0,
                leave_mb=4096,
                dd_mb=0,
                grow_mb=0,
            ),
            pressure=False,
        ),
    )
}
"""Every scenario by name, in report order."""


def quick(s: Scenario) -> Scenario:
    """The same scenario at the ``--quick`` (smoke-test) size."""
    return replace(s, workload=QUICK)


PRESSURE_FIELDS: Final = frozenset(
    {
        "files",
        "negative_dentries",
        "slab_mb",
        "hog_mb",
        "cache_mb",
        "leave_mb",
        "dd_mb",
        "dd_rate_mb",
        "grow_mb",
        "grow_rate_mb",
    }
)
"""Workload sizes that make memory pressure (a scenario without pressure keeps its own)."""


def with_sizes(s: Scenario, sizes: Mapping[str, int]) -> Scenario:
    """The scenario with some workload sizes changed (``burstguard lab --set``), except the
    pressure sizes of a scenario that has none. Raises ValueError for an unknown size."""
    unknown = sorted(set(sizes) - {f.name for f in fields(Workload)})
    if unknown:
        raise ValueError(f"unknown size {', '.join(unknown)}")
    keep = {k: v for k, v in sizes.items() if s.pressure or k not in PRESSURE_FIELDS}
    return replace(s, workload=replace(s.workload, **keep))


def kernel_params(s: Scenario, *, trace: bool = True) -> dict[str, str]:
    """``lab.*`` kernel command-line parameters the guest's /init reads."""
    w = s.workload
    params = {
        "files": str(w.files),
        "neg": str(w.negative_dentries),
        "namelen": str(w.name_len),
        "slabmb": str(w.slab_mb),
        "hog": "auto" if w.hog_mb is None else str(w.hog_mb),
        "cache": str(w.cache_mb),
        "leave": str(w.leave_mb),
        "ddrate": str(w.dd_rate_mb),
        "dd": str(w.dd_mb),
        "grow": str(w.grow_mb),
        "growrate": str(w.grow_rate_mb),
        "n": str(w.containers),
        "slots": str(w.slots),
        "mb": str(w.container_mb),
        "small": str(w.small_mb),
        "hold": str(w.hold_ms),
        "layers": str(w.layers),
        "guard": s.guard,
        "trace": "1" if trace else "0",
        "tracemin": str(w.trace_min_us),
    }
    if s.watermark_scale_factor is not None:
        params["wsf"] = str(s.watermark_scale_factor)
    if s.reclaim_cgroups:
        params["guardargs"] = ",".join(f"--reclaim-cgroup,{cg}" for cg in s.reclaim_cgroups)
    return params
