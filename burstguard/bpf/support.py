"""What kind of kernel tracing this node allows: bpftrace, tracepoints, kprobes, BTF.

The agent prefers tracepoints (stable, cheap) over kprobes (DESIGN §2.3) and degrades to
procfs-only signals when bpftrace or the privilege is missing; ``doctor`` prints the same
facts so an operator knows before deploying which signals a node will have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
"""Where tracefs is mounted (the second on kernels before 4.1 or without the new mount)."""

TRACEPOINTS = (
    "vmscan/mm_vmscan_kswapd_wake",
    "vmscan/mm_vmscan_direct_reclaim_begin",
    "vmscan/mm_shrink_slab_start",
    "syscalls/sys_enter_mount",
    "syscalls/sys_enter_fsmount",
    "lock/contention_begin",
)
"""Tracepoints the bpf/ scripts use."""

KPROBE_FUNCTIONS = ("down_read_trylock", "up_read", "prealloc_shrinker")
"""Functions the pre-6.7 shrinker_lock script attaches kprobes to."""

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


@dataclass(frozen=True)
class Support:
    """Tracing facilities of this node."""

    bpftrace: str | None
    """Path of the bpftrace binary, None when not installed."""
    bpftrace_version: str | None
    """``bpftrace --version`` output, None when unknown."""
    privileged: bool
    """CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN in the effective set."""
    tracefs: str | None
    """Mounted tracefs root, None when not mounted or not readable."""
    btf: bool
    """/sys/kernel/btf/vmlinux exists (typed tracepoint args, kfuncs)."""
    tracepoints: dict[str, bool] = field(default_factory=dict)
    """Each tracepoint of TRACEPOINTS: available or not."""
    kprobe_functions: dict[str, bool] = field(default_factory=dict)
    """Each function of KPROBE_FUNCTIONS: traceable (listed in available_filter_functions)."""

    @property
    def usable(self) -> bool:
        """bpftrace can run here at all."""
        return self.bpftrace is not None and self.privileged and self.tracefs is not None

    def reason_unusable(self) -> str:
        """Why BPF signals are missing, in one phrase (empty when usable)."""
        if self.bpftrace is None:
            return "bpftrace not installed"
        if not self.privileged:
            return "no CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN)"
        if self.tracefs is None:
            return "tracefs not mounted"
        return ""


def _effective_caps() -> int:
    """This process's effective capabilities (its own /proc, not the host's proc root)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _has_cap(caps: int, bit: int) -> bool:
    return bool(caps >> bit & 1)


def _traceable_functions(tracefs: str, names: tuple[str, ...]) -> dict[str, bool]:
    wanted = set(names)
    found: set[str] = set()
    try:
        with open(os.path.join(tracefs, "available_filter_functions")) as f:
            for line in f:
                name = line.split(" ", 1)[0].strip()
                if name in wanted:
                    found.add(name)
    except OSError:
        return dict.fromkeys(names, False)
    return {n: n in found for n in names}


def detect() -> Support:
    """Probe this node (reads files, runs ``bpftrace --version``)."""
    binary = shutil.which("bpftrace")
    version = None
    if binary:
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
            version = out.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            version = None
    caps = _effective_caps()
    privileged = _has_cap(caps, _CAP_SYS_ADMIN) or (
        _has_cap(caps, _CAP_BPF) and _has_cap(caps, _CAP_PERFMON)
    )
    tracefs = next((r for r in TRACEFS_ROOTS if os.path.isdir(os.path.join(r, "events"))), None)
    tracepoints = {
        tp: tracefs is not None and os.path.isdir(os.path.join(tracefs, "events", tp))
        for tp in TRACEPOINTS
    }
    kprobes = (
        _traceable_functions(tracefs, KPROBE_FUNCTIONS)
        if tracefs
        else dict.fromkeys(KPROBE_FUNCTIONS, False)
    )
    return Support(
        bpftrace=binary,
        bpftrace_version=version,
        privileged=privileged,
        tracefs=tracefs,
        btf=os.path.exists("/sys/kernel/btf/vmlinux"),
        tracepoints=tracepoints,
        kprobe_functions=kprobes,
    )
