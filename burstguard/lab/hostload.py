"""The host's load around each lab boot, and whether it was quiet enough to trust.

The guest runs under emulation on a shared host: when other work takes the host's cores, the
guest's vCPU threads are descheduled and every guest-time figure stretches, including lock
holds (the first lab results showed multi-second holds at host load 12-21 that a quiet host
did not reproduce). So each boot records the host's 1-minute load average just before it
starts and just after it ends, and a run is *busy* when, leaving out the guest's own vCPU
threads (each keeps one task runnable while the guest is busy), the load exceeded one per host
core at either point. Busy runs are flagged in the report rather than dropped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

QUIET_PER_CORE: Final = 0.5
"""1-minute load per host core under which the host counts as settled before a boot."""


@dataclass(frozen=True)
class HostLoad:
    """The host's 1-minute load average around one boot."""

    before: float
    """Just before qemu started."""
    after: float
    """Just after qemu exited."""
    cores: int
    """Host cores (``os.cpu_count()``)."""
    guest_cpus: int
    """The guest's vCPUs (its own runnable threads while it ran)."""

    @property
    def busy(self) -> bool:
        """Other work took more than one load per core before or during the boot."""
        return max(self.before, self.after - self.guest_cpus) > self.cores


def load1() -> float:
    """The host's 1-minute load average now."""
    return os.getloadavg()[0]


def cores() -> int:
    """Host cores."""
    return os.cpu_count() or 1


def settle(
    wait_s: float,
    *,
    threshold: float | None = None,
    read: Callable[[], float] = load1,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> float | None:
    """Wait up to ``wait_s`` for the 1-minute load to fall to ``threshold`` (default
    :data:`QUIET_PER_CORE` per core); the load reached, or None when the host stayed busy."""
    limit = threshold if threshold is not None else QUIET_PER_CORE * cores()
    waited = 0.0
    step = 5.0
    while True:
        now = read()
        if now <= limit:
            return now
        if waited >= wait_s:
            return None
        if progress is not None and waited % 60 < step:
            progress(f"host load {now:.2f} > {limit:.2f}: waiting for it to settle")
        sleep(step)
        waited += step
