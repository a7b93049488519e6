"""Which bpftrace scripts this kernel can run, and which of those the agent should run.

Facts are gathered once at start-up (:func:`probe_kernel`: tracefs event folders, the
traceable-function list, kallsyms) and the choice is a pure function of the specs and those
facts (:func:`choose`), so it is tested with made-up kernels. Rules (DESIGN §2.3):

* a script runs only when its release range fits and every tracepoint, kprobe function and
  data symbol it names exists;
* tracepoints before kprobes: scripts are taken in (priority, name) order and a script whose
  node-state inputs (``feeds``) are all covered by a script already chosen is skipped, since
  kprobes on hot functions (``down_read_trylock``/``up_read``) cost far more than a
  tracepoint that already gives the same signal.

``available_filter_functions`` can be unreadable even for root (6.18 Firecracker guest:
EPERM); then kprobe targets are looked up as text symbols in kallsyms, which is what
bpftrace itself falls back to, and the reason says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from burstguard.bpf import specs
from burstguard.core import kernel
from burstguard.procfs import reading

TRACEFS_CANDIDATES: Final = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
"""Where tracefs is mounted (the second through debugfs on older systems)."""


@dataclass(frozen=True)
class KernelFacts:
    """What the running kernel offers to tracing."""

    release: str
    """Kernel release string."""
    tracefs: str | None
    """Mounted tracefs root, None when not mounted."""
    tracepoints: frozenset[str]
    """``category:event`` names that exist (only those the specs asked about)."""
    functions: frozenset[str] | None
    """Traceable functions among those asked about; None when unknown."""
    symbols: frozenset[str] | None
    """kallsyms names among those asked about (text and data); None when unreadable."""


@dataclass(frozen=True)
class Choice:
    """The verdict on one script."""

    spec: specs.ScriptSpec
    """The script."""
    run: bool
    """True when the agent should start it."""
    reason: str
    """Why not (or ``supported``)."""


def _find_tracefs(candidates: tuple[str, ...]) -> str | None:
    for root in candidates:
        if os.path.isdir(os.path.join(root, "events")):
            return root
    return None


def _traceable(tracefs: str, wanted: frozenset[str]) -> frozenset[str] | None:
    path = os.path.join(tracefs, "available_filter_functions")
    found: set[str] = set()
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                name = line.split(" ", 1)[0].strip()
                if name in wanted:
                    found.add(name)
    except OSError:
        return None
    return frozenset(found)


def probe_kernel(
    all_specs: tuple[specs.ScriptSpec, ...],
    proc_root: str = "/proc",
    tracefs_candidates: tuple[str, ...] = TRACEFS_CANDIDATES,
) -> KernelFacts:
    """Look up, on this machine, everything the specs need (reads tracefs and kallsyms)."""
    try:
        release = reading.read_text(proc_root, "sys/kernel/osrelease").strip()
    except Exception:  # a release we cannot read fails every range check below
        release = ""
    tracefs = _find_tracefs(tracefs_candidates)
    wanted_tp = {tp for s in all_specs for tp in s.kernel.tracepoints}
    present_tp: set[str] = set()
    if tracefs is not None:
        for tp in wanted_tp:
            category, event = tp.split(":", 1)
            if os.path.isdir(os.path.join(tracefs, "events", category, event)):
                present_tp.add(tp)
    wanted_fn = frozenset(f for s in all_specs for f in s.kernel.kprobes)
    functions = _traceable(tracefs, wanted_fn) if tracefs and wanted_fn else None
    wanted_sym = frozenset(x for s in all_specs for x in s.kernel.symbols) | wanted_fn
    symbols = reading.find_words(proc_root, "kallsyms", wanted_sym) if wanted_sym else None
    return KernelFacts(
        release=release,
        tracefs=tracefs,
        tracepoints=frozenset(present_tp),
        functions=functions,
        symbols=symbols,
    )


def _fmt(release: tuple[int, int]) -> str:
    return f"{release[0]}.{release[1]}"


def supported(spec: specs.ScriptSpec, facts: KernelFacts) -> str | None:
    """None when the kernel offers everything the script needs, else the first reason not."""
    version = kernel.parse_release(facts.release)
    if version is None:
        return f"cannot parse kernel release {facts.release!r}"
    needs = spec.kernel
    if version < needs.min_release:
        return f"needs kernel >= {_fmt(needs.min_release)}, have {facts.release}"
    if needs.below_release is not None and version >= needs.below_release:
        return f"applies to kernels before {_fmt(needs.below_release)}, have {facts.release}"
    if needs.tracepoints and facts.tracefs is None:
        return "tracefs is not mounted (/sys/kernel/tracing)"
    missing_tp = sorted(set(needs.tracepoints) - facts.tracepoints)
    if missing_tp:
        return f"tracepoint {missing_tp[0]} not found"
    for fn in needs.kprobes:
        if facts.functions is not None:
            if fn not in facts.functions:
                return f"function {fn} is not traceable"
        elif facts.symbols is None or fn not in facts.symbols:
            return f"function {fn} not in kallsyms (available_filter_functions unreadable)"
    for sym in needs.symbols:
        if facts.symbols is None or sym not in facts.symbols:
            return f"symbol {sym} not in kallsyms (needs CONFIG_KALLSYMS_ALL)"
    return None


def choose(all_specs: tuple[specs.ScriptSpec, ...], facts: KernelFacts) -> tuple[Choice, ...]:
    """Decide for every spec whether to run it; see the module docstring for the rules."""
    covered: dict[str, str] = {}
    out = []
    for spec in sorted(all_specs, key=lambda s: (s.priority, s.name)):
        why_not = supported(spec, facts)
        if why_not is not None:
            out.append(Choice(spec, False, why_not))
            continue
        feeds = {m.feeds for m in spec.metrics if m.feeds}
        if feeds and all(f in covered for f in feeds):
            by = ", ".join(sorted({covered[f] for f in feeds}))
            out.append(Choice(spec, False, f"covered by {by} (tracepoints are cheaper)"))
            continue
        for f in feeds:
            covered.setdefault(f, spec.name)
        out.append(Choice(spec, True, "supported"))
    return tuple(out)


def default_specs() -> tuple[specs.ScriptSpec, ...]:
    """Specs from the configured scripts folder; empty when there is none."""
    directory = specs.scripts_dir()
    return () if directory is None else specs.load_all(Path(directory))
