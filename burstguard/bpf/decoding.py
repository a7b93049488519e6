"""Decoding ``bpftrace -f json`` output into windows of histograms and counters.

Pure: text in, values out, so it is tested on output captured from real runs
(``tests/fixtures/bpf/``). The scripts in ``bpf/`` print their maps every interval and then the
line ``burstguard:window``; a map that has seen no event prints nothing (bpftrace skips empty
maps), so a missing map means zero.

bpftrace 0.17 prints, one JSON object per line:
``{"type": "hist", "data": {"@m": [{"min": 2, "max": 3, "count": 1}, ...]}}`` (unkeyed),
``{"type": "hist", "data": {"@m": {"key": [...]}}}`` (keyed), ``{"type": "map", "data":
{"@c": 7}}`` (count/sum), ``{"type": "printf", "data": "..."}``, ``{"type":
"attached_probes", "data": {"probes": N}}``, ``{"type": "lost_events", ...}``. Buckets are
log2: ``[2^k, 2^(k+1) - 1]``, plus ``[0, 0]`` and ``(.., -1]``. Lines that are not JSON
(bpftrace warnings go to stderr, but a truncated last line can happen) are counted, not fatal.

The agent's scripts print cumulative maps (never cleared) and :func:`difference` turns two
readings into the window between them; captures made before that (``tests/fixtures/bpf/``)
hold one cleared window per reading, which :class:`~burstguard.bpf.running.Replay` sums.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from burstguard.core import cumulative

WINDOW_MARKER: Final = "burstguard:window"
"""The printf line every script prints after its maps, closing one window."""


@dataclass(frozen=True)
class Bucket:
    """One histogram bucket of integer values ``low..high`` (inclusive)."""

    low: int
    """Smallest value in the bucket (for the negative bucket: equal to ``high``)."""
    high: int
    """Largest value in the bucket, inclusive."""
    count: int
    """Number of values that fell in the bucket."""


Histogram = tuple[Bucket, ...]
"""Buckets in increasing order, only non-empty ones."""


@dataclass(frozen=True)
class MapValue:
    """One printed map: per key (``""`` for an unkeyed map) a histogram or a number."""

    histograms: Mapping[str, Histogram] = field(default_factory=dict)
    """Histogram maps by key."""
    numbers: Mapping[str, int] = field(default_factory=dict)
    """count()/sum() maps by key."""


@dataclass(frozen=True)
class Window:
    """Everything one script printed between two window markers."""

    maps: Mapping[str, MapValue]
    """By map name without ``@``."""
    messages: tuple[str, ...] = ()
    """Other printf lines (stripped), in order."""
    lost_events: int = 0
    """Events bpftrace reported lost in this window."""


def label_value(key: str) -> str:
    """Shorten a map key to a label value: probe names become the function or syscall.

    ``tracepoint:syscalls:sys_exit_fsconfig`` -> ``fsconfig``;
    ``kretprobe:prealloc_shrinker`` -> ``prealloc_shrinker``; other keys are kept.
    """
    if key.startswith(("tracepoint:", "kprobe:", "kretprobe:")):
        key = key.rsplit(":", 1)[1]
        for prefix in ("sys_exit_", "sys_enter_"):
            if key.startswith(prefix):
                return key[len(prefix) :]
    return key


def _buckets(raw: object) -> Histogram | None:
    if not isinstance(raw, list):
        return None
    out = []
    for b in raw:
        if not isinstance(b, dict):
            return None
        high, count = b.get("max"), b.get("count")
        low = b.get("min", high)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, count)):
            return None
        assert isinstance(low, int) and isinstance(high, int) and isinstance(count, int)
        if count > 0:
            out.append(Bucket(low=low, high=high, count=count))
    return tuple(sorted(out, key=lambda b: b.low))


@dataclass
class Decoder:
    """Feeds lines in, returns completed windows. State: the window being assembled."""

    _maps: dict[str, MapValue] = field(default_factory=dict)
    _messages: list[str] = field(default_factory=list)
    _lost: int = 0
    attached_probes: int | None = None
    """Probe count from the ``attached_probes`` line; None until it arrives."""
    undecodable_lines: int = 0
    """Lines that were not the JSON objects described above."""

    def feed(self, line: str) -> Window | None:
        """Take one output line; return a :class:`Window` when it closed one."""
        line = line.strip()
        if not line:
            return None
        try:
            obj = json.loads(line)
        except ValueError:
            self.undecodable_lines += 1
            return None
        if not isinstance(obj, dict):
            self.undecodable_lines += 1
            return None
        kind, data = obj.get("type"), obj.get("data")
        if kind == "printf" and isinstance(data, str):
            text = data.strip()
            if text == WINDOW_MARKER:
                return self._close()
            self._messages.append(text)
        elif kind == "attached_probes" and isinstance(data, dict):
            probes = data.get("probes")
            self.attached_probes = probes if isinstance(probes, int) else None
        elif kind == "lost_events" and isinstance(data, dict):
            lost = data.get("events")
            self._lost += lost if isinstance(lost, int) else 0
        elif kind in ("hist", "map") and isinstance(data, dict):
            for name, value in data.items():
                decoded = _map_value(value)
                if decoded is None:
                    self.undecodable_lines += 1
                else:
                    self._maps[name.lstrip("@")] = decoded
        # stats, time, join and unknown kinds carry nothing the scripts emit on purpose
        return None

    def _close(self) -> Window:
        window = Window(maps=self._maps, messages=tuple(self._messages), lost_events=self._lost)
        self._maps, self._messages, self._lost = {}, [], 0
        return window


def _map_value(value: object) -> MapValue | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return MapValue(numbers={"": value})
    unkeyed = _buckets(value)
    if unkeyed is not None:
        return MapValue(histograms={"": unkeyed})
    if not isinstance(value, dict):
        return None
    hists: dict[str, Histogram] = {}
    numbers: dict[str, int] = {}
    for key, item in value.items():
        label = label_value(str(key))
        if isinstance(item, int) and not isinstance(item, bool):
            numbers[label] = numbers.get(label, 0) + item
            continue
        buckets = _buckets(item)
        if buckets is None:
            return None
        hists[label] = merge((hists.get(label, ()), buckets))
    return MapValue(histograms=hists, numbers=numbers)


def decode_lines(lines: Iterable[str]) -> tuple[list[Window], Decoder]:
    """Decode a whole capture; returns the closed windows and the decoder (for its counters)."""
    decoder = Decoder()
    windows = [w for w in (decoder.feed(line) for line in lines) if w is not None]
    return windows, decoder


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """Sum histograms bucket by bucket (buckets are identified by their bounds)."""
    counts: dict[tuple[int, int], int] = {}
    for hist in histograms:
        for b in hist:
            counts[(b.low, b.high)] = counts.get((b.low, b.high), 0) + b.count
    return tuple(Bucket(low=lo, high=hi, count=c) for (lo, hi), c in sorted(counts.items()))


def total(hist: Histogram) -> int:
    """Number of values in a histogram."""
    return sum(b.count for b in hist)


def quantile(hist: Histogram, q: float) -> float | None:
    """Estimate the q-quantile (0 < q <= 1) of a log2 histogram; None when empty.

    Interpolates linearly inside the bucket that holds the rank, over ``[low, high + 1)``,
    the way Prometheus' ``histogram_quantile`` does; the answer is never outside that
    bucket, so the error is at most the bucket width (a factor of 2 for log2 buckets).
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {q}")
    n = total(hist)
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for b in hist:
        if seen + b.count >= rank:
            within = (rank - seen) / b.count
            return float(b.low) + within * float(b.high + 1 - b.low)
        seen += b.count
    last = hist[-1]
    return float(last.high + 1)


def estimated_sum(hist: Histogram) -> float:
    """Sum of values estimated from bucket midpoints (log2 histograms keep no exact sum)."""
    return math.fsum(b.count * (b.low + b.high + 1) / 2.0 for b in hist)


def _flat(
    window: Window,
) -> tuple[dict[tuple[str, str, int, int], int], dict[tuple[str, str], int]]:
    buckets: dict[tuple[str, str, int, int], int] = {}
    numbers: dict[tuple[str, str], int] = {}
    for name, value in window.maps.items():
        for key, hist in value.histograms.items():
            for b in hist:
                buckets[(name, key, b.low, b.high)] = b.count
        for key, number in value.numbers.items():
            numbers[(name, key)] = number
    return buckets, numbers


def difference(previous: Window | None, current: Window) -> Window:
    """The window between two cumulative readings: what ``current`` adds to ``previous``.

    The scripts print their maps cumulatively (never cleared), so every event is in exactly
    one difference (``core.cumulative``); ``previous`` None is the first reading, all new.
    Messages and lost events are the current reading's own.
    """
    old_b, old_n = _flat(previous) if previous is not None else ({}, {})
    new_b, new_n = _flat(current)
    hists: dict[str, dict[str, list[Bucket]]] = {}
    numbers: dict[str, dict[str, int]] = {}
    for (name, key, low, high), count in sorted(cumulative.increase(old_b, new_b).items()):
        hists.setdefault(name, {}).setdefault(key, []).append(Bucket(low, high, count))
    for (name, key), number in cumulative.increase(old_n, new_n).items():
        numbers.setdefault(name, {})[key] = number
    maps = {
        name: MapValue(
            histograms={k: tuple(v) for k, v in hists.get(name, {}).items()},
            numbers=numbers.get(name, {}),
        )
        for name in sorted(set(hists) | set(numbers))
    }
    return Window(maps=maps, messages=current.messages, lost_events=current.lost_events)
