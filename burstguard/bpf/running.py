"""Running the chosen bpftrace scripts as child processes and keeping their latest windows.

One ``bpftrace -f json -B none <script>`` process per script; a reader thread per process
feeds stdout lines to :class:`decoding.Decoder` and keeps (a) the last closed window, for
the node state's window p99, and (b) cumulative histograms and counters since start, for
the exporter's Prometheus histograms (which must only grow). stderr is kept (last lines) so
a failing script is reported with bpftrace's own words. Nothing here raises into the agent:
every failure becomes a :class:`ScriptStatus` with a reason, and the agent degrades to
procfs-only signals (DESIGN §2.3).

bpftrace 0.17 prints ``ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK`` when it may
not raise the memlock limit; on memcg-accounted BPF kernels (5.11+) that is harmless and
filtered from the reasons.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Final, Protocol

from burstguard.bpf import choosing, decoding, specs

_SECONDS_PER_UNIT: Final = {"nanoseconds": 1e-9}
_HARMLESS_STDERR: Final = ("couldn't set RLIMIT_MEMLOCK",)
STDERR_KEEP: Final = 20
"""stderr lines kept per script for the failure reason."""


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
    """(map, label value) -> histogram summed over every window."""
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    """(map, label value) -> sum over every window."""

    def add(self, window: decoding.Window) -> None:
        """Add one window's values."""
        for name, value in window.maps.items():
            for key, hist in value.histograms.items():
                old = self.histograms.get((name, key), ())
                self.histograms[(name, key)] = decoding.merge((old, hist))
            for key, number in value.numbers.items():
                self.counters[(name, key)] = self.counters.get((name, key), 0) + number


class ScriptProcess:
    """One running bpftrace script."""

    def __init__(self, spec: specs.ScriptSpec, binary: str) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._decoder = decoding.Decoder()
        self._latest: decoding.Window | None = None
        self._latest_at: float | None = None
        self._totals = Totals()
        self._windows = 0
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_KEEP)
        self._failed: str | None = None
        self._proc = subprocess.Popen(
            [binary, "-f", "json", "-B", "none", str(spec.script_path)],
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
            window = self._decoder.feed(line)
            if window is None:
                continue
            with self._lock:
                self._latest = window
                self._latest_at = time.monotonic()
                self._totals.add(window)
                self._windows += 1

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

    def status(self) -> ScriptStatus:
        """Current state; a dead process is ``failed`` with bpftrace's last error line."""
        code = self._proc.poll()
        with self._lock:
            windows = self._windows
            errors = list(self._stderr)
        if code is not None:
            last = next((e for e in reversed(errors) if "ERROR" in e), errors[-1] if errors else "")
            reason = f"bpftrace exited with {code}" + (f": {last}" if last else "")
            return ScriptStatus(self.spec.name, "failed", reason, windows)
        attached = self._decoder.attached_probes is not None
        return ScriptStatus(self.spec.name, "running" if attached else "starting", "", windows)

    def latest(self) -> tuple[decoding.Window | None, float | None]:
        """The last closed window and when it arrived (monotonic seconds)."""
        with self._lock:
            return self._latest, self._latest_at

    def totals(self) -> Totals:
        """A copy of the cumulative values."""
        with self._lock:
            return Totals(dict(self._totals.histograms), dict(self._totals.counters))

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
    """Starts the chosen scripts and answers for all of them."""

    def __init__(
        self,
        choices: tuple[choosing.Choice, ...],
        binary: str | None = None,
        which: Callable[[str], str | None] = shutil.which,
        preflight_reason: str = "",
    ) -> None:
        self.choices = choices
        self.processes: dict[str, ScriptProcess] = {}
        self._start_error = ""
        path = binary or which("bpftrace")
        if preflight_reason:
            self._start_error = preflight_reason
        elif path is None:
            self._start_error = "bpftrace not found on PATH"
        elif not any(c.run for c in choices):
            self._start_error = "no bpftrace script is supported by this kernel"
        else:
            for c in choices:
                if not c.run:
                    continue
                try:
                    self.processes[c.spec.name] = ScriptProcess(c.spec, path)
                except OSError as exc:
                    self._start_error = f"cannot start bpftrace: {exc.strerror or exc}"
                    break

    def statuses(self) -> tuple[ScriptStatus, ...]:
        """One status per spec, skipped ones included."""
        out = []
        for c in self.choices:
            proc = self.processes.get(c.spec.name)
            if proc is not None:
                out.append(proc.status())
            elif c.run:
                out.append(ScriptStatus(c.spec.name, "failed", self._start_error))
            else:
                out.append(ScriptStatus(c.spec.name, "skipped", c.reason))
        return tuple(out)

    def totals(self) -> Mapping[str, Totals]:
        """Cumulative values per running script."""
        return {name: p.totals() for name, p in self.processes.items()}

    def signals(self, now: float, max_age_s: float | None = None) -> Signals:
        """Window p99s for the node state at ``now`` (monotonic s); old windows are ignored."""
        p99: dict[str, list[float]] = {"mount_p99": [], "lock_wait_p99": []}
        running = False
        problems: list[str] = []
        if self._start_error:
            problems.append(self._start_error)
        for status in self.statuses():
            if status.state == "failed" and status.reason != self._start_error:
                problems.append(f"{status.name}: {status.reason}")
        for proc in self.processes.values():
            if proc.status().state != "running":
                continue
            running = True
            window, at = proc.latest()
            if window is None or at is None:
                continue
            age_limit = max_age_s if max_age_s is not None else 3.0 * proc.spec.interval_s
            if now - at > age_limit:
                continue
            for feed, value in window_p99s(proc.spec, window).items():
                p99.setdefault(feed, []).append(value)
        return Signals(
            mount_p99_s=max(p99["mount_p99"]) if p99["mount_p99"] else None,
            lock_wait_p99_s=max(p99["lock_wait_p99"]) if p99["lock_wait_p99"] else None,
            degraded_reason="; ".join(problems),
            running=running,
        )

    def stop(self) -> None:
        """Stop every process."""
        for proc in self.processes.values():
            proc.stop()


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
    analysis): every window of each capture is added to the totals, and the last window
    of each gives the p99s."""

    def __init__(self, captures: Mapping[str, tuple[specs.ScriptSpec, list[str]]]) -> None:
        self.choices = tuple(
            choosing.Choice(spec, True, "replayed") for spec, _ in captures.values()
        )
        self._totals: dict[str, Totals] = {}
        self._last: dict[str, dict[str, float]] = {}
        for name, (spec, lines) in captures.items():
            windows, _ = decoding.decode_lines(lines)
            totals = Totals()
            for w in windows:
                totals.add(w)
            self._totals[name] = totals
            self._last[name] = window_p99s(spec, windows[-1]) if windows else {}

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
