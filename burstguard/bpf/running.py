"""Running the chosen bpftrace scripts in one bpftrace process and keeping their windows.

The chosen scripts are combined into one program (:mod:`combining`: maps renamed per
script, one interval block) and run as one ``bpftrace -f json -B none -e <program>``, since
each bpftrace process carries its own LLVM (about 100 MiB RSS). Once the probes are attached
the compiler pages are handed back (:mod:`trimming`). A reader thread feeds stdout lines to
:class:`decoding.Decoder`; every reading is split per script by map prefix and keeps, per
script, (a) the cumulative values since start, for the exporter's Prometheus histograms
(which must only grow), and (b) the difference from the previous reading, the last window,
for the node state's window p99. The scripts never clear their maps, so no event is lost
between two windows (``core.cumulative``). stderr is kept (last lines) so a failing program
is reported with bpftrace's own words. Nothing here raises into the agent: every failure
becomes a :class:`ScriptStatus` with a reason, and the agent degrades to procfs-only signals
(DESIGN §2.3).

bpftrace 0.17 prints ``ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK`` when it may
not raise the memlock limit; on memcg-accounted BPF kernels (5.11+) that is harmless and
filtered from the reasons.
"""

from __future__ import annotations

import collections
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Final, Protocol

from burstguard.bpf import choosing, combining, decoding, specs, trimming

_SECONDS_PER_UNIT: Final = {"nanoseconds": 1e-9}
_HARMLESS_STDERR: Final = ("couldn't set RLIMIT_MEMLOCK",)
_LOG: Final = logging.getLogger("burstguard.bpf")
STDERR_KEEP: Final = 20
"""stderr lines kept for the failure reason."""


@dataclass(frozen=True)
class ScriptStatus:
    """How one script is doing."""

    name: str
    """Script name."""
    state: str
    """``skipped``, ``starting``, ``running`` or ``failed``."""
    reason: str = ""
    """Why skipped or failed, empty otherwise."""
    windows: int = 0
    """Windows received so far."""


@dataclass
class Totals:
    """Cumulative values of one script since it started (for the exporter)."""

    histograms: dict[tuple[str, str], decoding.Histogram] = field(default_factory=dict)
    """(map, label value) -> histogram of every value since start."""
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    """(map, label value) -> count or sum since start."""

    def add(self, window: decoding.Window) -> None:
        """Add one window's values (captures of cleared windows, see :class:`Replay`)."""
        for name, value in window.maps.items():
            for key, hist in value.histograms.items():
                old = self.histograms.get((name, key), ())
                self.histograms[(name, key)] = decoding.merge((old, hist))
            for key, number in value.numbers.items():
                self.counters[(name, key)] = self.counters.get((name, key), 0) + number

    @classmethod
    def of(cls, reading: decoding.Window) -> Totals:
        """The totals a cumulative reading holds."""
        totals = cls()
        totals.add(reading)
        return totals


@dataclass
class _ScriptState:
    """The latest reading of one script and the window it closed."""

    reading: decoding.Window | None = None
    window: decoding.Window | None = None
    window_at: float | None = None
    windows: int = 0


class Program:
    """One bpftrace process running the combined program of ``scripts``."""

    def __init__(
        self,
        scripts: tuple[specs.ScriptSpec, ...],
        binary: str,
        trim: Callable[[int], trimming.Trimmed] | None = trimming.page_out_compiler,
    ) -> None:
        self.scripts = scripts
        self.trimmed: trimming.Trimmed | None = None
        """What handing back the compiler pages did; None until the probes are attached."""
        self._trim = trim
        self._lock = threading.Lock()
        self._decoder = decoding.Decoder()
        self._state = {s.name: _ScriptState() for s in scripts}
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_KEEP)
        program = combining.combine((s, s.script_path.read_text(encoding="utf-8")) for s in scripts)
        self._proc = subprocess.Popen(
            [binary, "-f", "json", "-B", "none", "-e", program],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self._proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            reading = self._decoder.feed(line)
            if self._decoder.attached_probes is not None and self.trimmed is None:
                self.trimmed = self._hand_back()
            if reading is None:
                continue
            if self._trim is not None and self.trimmed is not None and not self.trimmed.reason:
                # again every window (about 1 ms of CPU): pages another process shared at
                # the last call (a second bpftrace compiling) were skipped then
                self._trim(self._proc.pid)
            now = time.monotonic()
            per_script = combining.split(reading, self._state)
            with self._lock:
                for name, current in per_script.items():
                    state = self._state[name]
                    state.window = decoding.difference(state.reading, current)
                    state.reading, state.window_at = current, now
                    state.windows += 1

    def _hand_back(self) -> trimming.Trimmed:
        if self._trim is None:
            return trimming.Trimmed(0, "off")
        trimmed = self._trim(self._proc.pid)
        if trimmed.reason:
            _LOG.warning(
                "bpftrace keeps its compiler pages resident (about 70 MiB): %s "
                "(process_madvise needs CAP_SYS_NICE)",
                trimmed.reason,
            )
        else:
            _LOG.info(
                "bpftrace attached; %.0f MiB of LLVM/clang mappings handed back to the kernel",
                trimmed.advised_bytes / 2**20,
            )
        return trimmed

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.strip()
            if text and not any(h in text for h in _HARMLESS_STDERR):
                with self._lock:
                    self._stderr.append(text)

    @property
    def pid(self) -> int:
        """Process id of the bpftrace child (for resource accounting)."""
        return self._proc.pid

    def status(self, name: str) -> ScriptStatus:
        """State of script ``name``; a dead process is ``failed`` with bpftrace's last error."""
        code = self._proc.poll()
        with self._lock:
            windows = self._state[name].windows
            errors = list(self._stderr)
        if code is not None:
            last = next((e for e in reversed(errors) if "ERROR" in e), errors[-1] if errors else "")
            reason = f"bpftrace exited with {code}" + (f": {last}" if last else "")
            return ScriptStatus(name, "failed", reason, windows)
        # bpftrace announces the probe count before it attaches them; the generated interval
        # probe comes last in the program, so the first reading means every probe is attached
        attached = self._decoder.attached_probes is not None and windows > 0
        return ScriptStatus(name, "running" if attached else "starting", "", windows)

    def refused(self) -> bool:
        """The process exited before its first reading (its probes never all attached)."""
        with self._lock:
            readings = max((st.windows for st in self._state.values()), default=0)
        return self._proc.poll() is not None and readings == 0

    def spec(self, name: str) -> specs.ScriptSpec:
        """The spec of script ``name``."""
        return next(s for s in self.scripts if s.name == name)

    def latest(self, name: str) -> tuple[decoding.Window | None, float | None]:
        """The last closed window of script ``name`` and when it arrived (monotonic s)."""
        with self._lock:
            state = self._state[name]
            return state.window, state.window_at

    def totals(self, name: str) -> Totals:
        """Cumulative values of script ``name``."""
        with self._lock:
            reading = self._state[name].reading
        return Totals() if reading is None else Totals.of(reading)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGINT (bpftrace runs END and detaches), then SIGKILL after ``timeout_s``."""
        if self._proc.poll() is None:
            self._proc.send_signal(2)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for t in self._threads:
            t.join(timeout=1.0)


@dataclass(frozen=True)
class Signals:
    """What the BPF side contributes to one agent sample."""

    mount_p99_s: float | None
    """p99 of mount(2) over the last window, seconds; None without data."""
    lock_wait_p99_s: float | None
    """p99 of the shrinker/mount lock wait over the last window, seconds; None without data."""
    degraded_reason: str
    """Empty when every chosen script runs; else why BPF signals are missing or partial."""
    running: bool
    """At least one script is running."""


class Source(Protocol):
    """What the agent needs from the BPF side (a :class:`Runner` or a :class:`Replay`)."""

    choices: tuple[choosing.Choice, ...]

    def statuses(self) -> tuple[ScriptStatus, ...]:
        """One status per script."""

    def totals(self) -> Mapping[str, Totals]:
        """Cumulative values per running script."""

    def signals(self, now: float, max_age_s: float | None = None) -> Signals:
        """Window p99s and the degradation reason."""

    def stop(self) -> None:
        """Stop whatever runs."""


class Runner:
    """Starts the chosen scripts as one program and answers for all of them.

    If the combined program dies before its probes attach (one script's probe is refused on
    this kernel, say), each script is started again as a program of its own, once: the
    scripts that do attach keep their signals and the failing one is reported by name, at
    the cost of one bpftrace process per script.
    """

    def __init__(
        self,
        choices: tuple[choosing.Choice, ...],
        binary: str | None = None,
        which: Callable[[str], str | None] = shutil.which,
        preflight_reason: str = "",
    ) -> None:
        self.choices = choices
        self.programs: dict[str, Program] = {}
        """Script name -> the program running it (one shared program, or one each)."""
        self._start_error = ""
        self._split = False
        self._path = binary or which("bpftrace")
        chosen = tuple(c.spec for c in choices if c.run)
        if preflight_reason:
            self._start_error = preflight_reason
        elif self._path is None:
            self._start_error = "bpftrace not found on PATH"
        elif not chosen:
            self._start_error = "no bpftrace script is supported by this kernel"
        else:
            self._start(chosen)

    def _start(self, scripts: tuple[specs.ScriptSpec, ...]) -> None:
        assert self._path is not None
        try:
            program = Program(scripts, self._path)
        except OSError as exc:
            self._start_error = f"cannot start bpftrace: {exc.strerror or exc}"
            return
        except combining.CombineError as exc:
            self._start_error = f"cannot combine the bpf scripts: {exc}"
            return
        for spec in scripts:
            self.programs[spec.name] = program

    def _split_if_refused(self) -> None:
        if self._split or not self.programs:
            return
        shared = next(iter(self.programs.values()))
        if len(shared.scripts) < 2 or not shared.refused():
            return
        self._split = True
        _LOG.warning(
            "the combined bpftrace program failed before attaching (%s); "
            "starting one bpftrace per script",
            shared.status(shared.scripts[0].name).reason,
        )
        self.programs = {}
        for spec in shared.scripts:
            self._start((spec,))

    def pids(self) -> tuple[int, ...]:
        """Process ids of the bpftrace children (one, unless the combined program failed)."""
        return tuple(sorted({p.pid for p in self.programs.values()}))

    def statuses(self) -> tuple[ScriptStatus, ...]:
        """One status per spec, skipped ones included."""
        self._split_if_refused()
        out = []
        for c in self.choices:
            program = self.programs.get(c.spec.name)
            if program is not None:
                out.append(program.status(c.spec.name))
            elif c.run:
                out.append(ScriptStatus(c.spec.name, "failed", self._start_error))
            else:
                out.append(ScriptStatus(c.spec.name, "skipped", c.reason))
        return tuple(out)

    def totals(self) -> Mapping[str, Totals]:
        """Cumulative values per running script."""
        return {name: p.totals(name) for name, p in self.programs.items()}

    def signals(self, now: float, max_age_s: float | None = None) -> Signals:
        """Window p99s for the node state at ``now`` (monotonic s); old windows are ignored."""
        p99: dict[str, list[float]] = {"mount_p99": [], "lock_wait_p99": []}
        running = False
        problems: list[str] = []
        if self._start_error:
            problems.append(self._start_error)
        failed: dict[str, list[str]] = {}  # one reason per program, not one per script
        for status in self.statuses():
            if status.state == "failed" and status.reason != self._start_error:
                failed.setdefault(status.reason, []).append(status.name)
        problems.extend(f"{', '.join(names)}: {reason}" for reason, names in failed.items())
        for name, program in self.programs.items():
            if program.status(name).state != "running":
                continue
            running = True
            window, at = program.latest(name)
            if window is None or at is None:
                continue
            spec = program.spec(name)
            age_limit = max_age_s if max_age_s is not None else 3.0 * spec.interval_s
            if now - at > age_limit:
                continue
            for feed, value in window_p99s(spec, window).items():
                p99.setdefault(feed, []).append(value)
        return Signals(
            mount_p99_s=max(p99["mount_p99"]) if p99["mount_p99"] else None,
            lock_wait_p99_s=max(p99["lock_wait_p99"]) if p99["lock_wait_p99"] else None,
            degraded_reason="; ".join(problems),
            running=running,
        )

    def stop(self) -> None:
        """Stop every bpftrace process."""
        for program in {id(p): p for p in self.programs.values()}.values():
            program.stop()


def window_p99s(spec: specs.ScriptSpec, window: decoding.Window) -> dict[str, float]:
    """p99 (seconds) of each histogram that feeds the node state, over one window."""
    out: dict[str, float] = {}
    for metric in spec.metrics:
        value = window.maps.get(metric.name)
        if not metric.feeds or value is None:
            continue
        q = decoding.quantile(decoding.merge(value.histograms.values()), 0.99)
        if q is not None:
            out[metric.feeds] = max(
                out.get(metric.feeds, 0.0), q * _SECONDS_PER_UNIT.get(metric.unit, 1.0)
            )
    return out


class Replay:
    """The :class:`Runner` interface over captured output (tests, golden files, offline
    analysis). Captures are one script each, in either form: ``cumulative`` (what the agent
    runs now: the last reading is the totals, its difference from the one before the last
    window) or cleared windows, one per reading (captures made before the scripts stopped
    clearing: the windows are summed, the last one is the last window)."""

    def __init__(
        self,
        captures: Mapping[str, tuple[specs.ScriptSpec, list[str]]],
        cumulative: bool = True,
    ) -> None:
        self.choices = tuple(
            choosing.Choice(spec, True, "replayed") for spec, _ in captures.values()
        )
        self._totals: dict[str, Totals] = {}
        self._last: dict[str, dict[str, float]] = {}
        for name, (spec, lines) in captures.items():
            windows, _ = decoding.decode_lines(lines)
            if cumulative:
                self._totals[name] = Totals.of(windows[-1]) if windows else Totals()
                before = windows[-2] if len(windows) > 1 else None
                last = decoding.difference(before, windows[-1]) if windows else None
            else:
                totals = Totals()
                for w in windows:
                    totals.add(w)
                self._totals[name] = totals
                last = windows[-1] if windows else None
            self._last[name] = window_p99s(spec, last) if last is not None else {}

    def statuses(self) -> tuple[ScriptStatus, ...]:
        """Every replayed script counts as running."""
        return tuple(ScriptStatus(c.spec.name, "running") for c in self.choices)

    def totals(self) -> Mapping[str, Totals]:
        """Cumulative values per script."""
        return self._totals

    def signals(self, now: float, max_age_s: float | None = None) -> Signals:
        """p99s of the last window of each capture."""
        merged: dict[str, float] = {}
        for p99s in self._last.values():
            for feed, value in p99s.items():
                merged[feed] = max(merged.get(feed, 0.0), value)
        return Signals(merged.get("mount_p99"), merged.get("lock_wait_p99"), "", True)

    def stop(self) -> None:
        """Nothing runs."""
