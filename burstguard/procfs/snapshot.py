"""One consistent read of every /proc file burstguard uses, stamped with the caller's time.

The agent, ``doctor`` and the lab all take a :class:`Snapshot` and hand it to the pure core
model; nothing below the snapshot touches the file system again. ``taken_at`` is passed in
(monotonic seconds for rates), so tests and replays control time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from burstguard.procfs import (
    buddyinfo,
    meminfo,
    pressure,
    reading,
    scalars,
    vmstat,
    zoneinfo,
)

DEFAULT_PAGE_SIZE = 4096
"""Bytes per page on x86_64/arm64 4K kernels; the reader asks the running kernel."""


@dataclass(frozen=True)
class Snapshot:
    """Everything read from one proc root at one instant."""

    taken_at: float
    """Caller's clock when the read started, seconds (monotonic in the agent)."""
    zones: tuple[zoneinfo.Zone, ...]
    """Every zone of every NUMA node."""
    vmstat: dict[str, int]
    """/proc/vmstat counters."""
    meminfo: dict[str, int]
    """/proc/meminfo, bytes."""
    buddy: tuple[buddyinfo.BuddyZone, ...]
    """/proc/buddyinfo free blocks per order."""
    pressure: pressure.Pressure | None
    """Memory PSI, None when the kernel has no PSI."""
    os_release: str
    """Kernel release."""
    watermark_scale_factor: int | None
    """vm.watermark_scale_factor (units of 0.01 % of memory), None if unreadable."""
    min_free_kbytes: int | None
    """vm.min_free_kbytes, KiB, None if unreadable."""
    page_size: int = DEFAULT_PAGE_SIZE
    """Bytes per page."""


def _parse_optional_int(proc_root: str, rel: str) -> int | None:
    text = reading.read_optional(proc_root, rel)
    return None if text is None else scalars.parse_int(text, reading.path_of(proc_root, rel))


def read(proc_root: str, now: float, page_size: int | None = None) -> Snapshot:
    """Read and parse every file; raise ProcReadError/ProcParseError naming the file."""

    def text(rel: str) -> tuple[str, str]:
        return reading.read_text(proc_root, rel), reading.path_of(proc_root, rel)

    psi_text = reading.read_optional(proc_root, "pressure/memory")
    psi = (
        None
        if psi_text is None
        else pressure.parse(psi_text, reading.path_of(proc_root, "pressure/memory"))
    )
    return Snapshot(
        taken_at=now,
        zones=zoneinfo.parse(*text("zoneinfo")),
        vmstat=vmstat.parse(*text("vmstat")),
        meminfo=meminfo.parse(*text("meminfo")),
        buddy=buddyinfo.parse(*text("buddyinfo")),
        pressure=psi,
        os_release=scalars.parse_release(*text("sys/kernel/osrelease")),
        watermark_scale_factor=_parse_optional_int(proc_root, "sys/vm/watermark_scale_factor"),
        min_free_kbytes=_parse_optional_int(proc_root, "sys/vm/min_free_kbytes"),
        page_size=page_size or os.sysconf("SC_PAGE_SIZE"),
    )
