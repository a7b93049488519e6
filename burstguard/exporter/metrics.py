"""The agent's /metrics content, built from one immutable :class:`View` per scrape.

The agent keeps the newest :class:`View` (headroom, zones, rates, PSI, BPF totals,
preparation counts) and the collector turns it into metric families on each scrape, so a
scrape never reads /proc and the output is a pure function of the view: the golden-file
test renders a view built from a fixture proc root and compares the whole text.

BPF histograms arrive as cumulative log2 buckets (value ranges ``[2^k, 2^(k+1) - 1]`` in the
map's unit). They are exported on one fixed bucket layout (powers of two from 1 µs to 32 s,
in seconds) so the ``le`` set never changes between scrapes; ``_sum`` is estimated from
bucket midpoints because bpftrace's ``hist()`` keeps no exact sum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import exposition, registry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from burstguard.api import nodesummary
from burstguard.core import headroom as headroom_model
from burstguard.exporter import names
from burstguard.procfs import pressure as pressure_model

BPF_BUCKET_EXPONENTS = range(10, 36)
"""Bucket upper bounds 2^10 .. 2^35 in the map's unit (ns: ~1 µs .. ~34 s), then +Inf."""


@dataclass(frozen=True)
class BpfHistogram:
    """One cumulative bpftrace histogram series."""

    map_name: str
    """bpftrace map name without ``@``."""
    unit: str
    """Unit of the raw values (``nanoseconds``)."""
    label: str | None
    """Label name, None for an unkeyed map."""
    label_value: str
    """Label value (empty for an unkeyed map)."""
    buckets: tuple[tuple[int, int, int], ...]
    """(low, high inclusive, count) per log2 bucket, cumulative since the script started."""
    help: str
    """Help text from the spec."""


@dataclass(frozen=True)
class BpfCounter:
    """One cumulative bpftrace counter series."""

    map_name: str
    """bpftrace map name without ``@``."""
    label: str | None
    """Label name, None for an unkeyed map."""
    label_value: str
    """Label value."""
    value: int
    """Sum over every window since the script started."""
    help: str
    """Help text from the spec."""


@dataclass(frozen=True)
class View:
    """Everything /metrics shows, as of one sample."""

    headroom: headroom_model.Headroom | None
    """Headroom model output; None before the first good sample."""
    rates: nodesummary.ReclaimRates = field(default_factory=nodesummary.ReclaimRates)
    """Reclaim rates over the last interval."""
    pressure: pressure_model.Pressure | None = None
    """Memory PSI; None without PSI."""
    state: str = "Stale"
    """Node state: Open, Closed or Stale."""
    kernel_release: str = ""
    """Kernel release."""
    shrinker_exposed: bool | None = None
    """Kernel exposed to the shrinker_rwsem stall; None when unknown."""
    mount_p99_s: float | None = None
    """Window p99 of mount(2), seconds."""
    lock_wait_p99_s: float | None = None
    """Window p99 of the mount-path lock wait, seconds."""
    degraded: Mapping[str, str] = field(default_factory=dict)
    """Signal source (``procfs``, ``bpf``) -> reason it is degraded; absent = healthy."""
    bpf_scripts: Mapping[str, str] = field(default_factory=dict)
    """Script name -> state (``running``, ``starting``, ``skipped``, ``failed``)."""
    bpf_histograms: tuple[BpfHistogram, ...] = ()
    """Cumulative BPF histograms."""
    bpf_counters: tuple[BpfCounter, ...] = ()
    """Cumulative BPF counters."""
    samples: int = 0
    """Samples taken since start."""
    sample_errors: Mapping[str, int] = field(default_factory=dict)
    """Failed samples by kind (``read``, ``parse``)."""
    last_sample_duration_s: float = 0.0
    """How long the last sample took, seconds."""
    publishes: int = 0
    """Node summary publications since start."""
    publish_errors: int = 0
    """Failed publications since start."""
    preparation_actions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(action kind, outcome) -> count; outcomes ``done``, ``dry_run``, ``failed``, ``skipped``."""
    preparation_freed_bytes: Mapping[str, int] = field(default_factory=dict)
    """Action kind -> bytes freed (measured headroom gain), summed since start."""


def _bpf_histogram(series: list[BpfHistogram]) -> HistogramMetricFamily:
    first = series[0]
    scale = names.BPF_SECONDS_PER_UNIT.get(first.unit, 1.0)
    labels = [first.label] if first.label else []
    family = HistogramMetricFamily(
        names.bpf_metric(first.map_name, "histogram"), first.help, labels=labels
    )
    for s in sorted(series, key=lambda x: x.label_value):
        bounds = [2**e for e in BPF_BUCKET_EXPONENTS]
        cumulative = []
        for bound in bounds:
            cumulative.append(sum(c for _, hi, c in s.buckets if hi < bound))
        count = sum(c for _, _, c in s.buckets)
        buckets = [(_le(b * scale), n) for b, n in zip(bounds, cumulative, strict=True)]
        buckets.append(("+Inf", count))
        estimated = sum(c * (lo + hi + 1) / 2.0 for lo, hi, c in s.buckets) * scale
        family.add_metric([s.label_value] if labels else [], buckets, estimated)
    return family


def _le(value: float) -> str:
    return repr(float(f"{value:.9g}"))


def families(view: View) -> Iterator[Metric]:
    """The metric families for one view (pure)."""
    h = view.headroom
    if h is not None:
        per_zone = [
            (names.ZONE_FREE_BYTES, "Free memory of the zone.", "free_bytes"),
            (names.ZONE_MIN_BYTES, "min watermark: direct reclaim below it.", "min_bytes"),
            (names.ZONE_LOW_BYTES, "low watermark: kswapd wakes below it.", "low_bytes"),
            (names.ZONE_HIGH_BYTES, "high watermark: kswapd sleeps above it.", "high_bytes"),
            (
                names.ZONE_HEADROOM_BYTES,
                "max(0, free - high - lowmem_reserve) of the zone.",
                "headroom_bytes",
            ),
        ]
        for name, help_text, attribute in per_zone:
            g = GaugeMetricFamily(name, help_text, labels=["node", "zone"])
            for z in h.zones:
                value = getattr(z, attribute)
                if value is not None:
                    g.add_metric([str(z.node), z.zone], float(value))
            yield g
        yield GaugeMetricFamily(
            names.HEADROOM_BYTES,
            "Sum of zone headroom plus the cache credit minus the reserve: memory starts can "
            "take before kswapd wakes, or before it must drop more than cheap clean cache.",
            value=float(h.headroom_bytes),
        )
        yield GaugeMetricFamily(
            names.CACHE_CREDIT_BYTES,
            "Clean inactive page cache counted in the headroom (0 on kernels exposed to the "
            "shrinker_rwsem stall).",
            value=float(h.cache_credit_bytes),
        )
        yield GaugeMetricFamily(
            names.RECLAIMABLE_BYTES,
            "Inactive(file) + Active(file): page cache proactive reclaim could free.",
            value=float(h.reclaimable_bytes),
        )
        if h.high_order_free_ratio is not None:
            yield GaugeMetricFamily(
                names.HIGH_ORDER_FREE_RATIO,
                "Share of free pages in blocks of order 4 or more (low = fragmented).",
                value=h.high_order_free_ratio,
            )
    rates = GaugeMetricFamily(
        names.RECLAIM_RATE,
        "Reclaim activity per second over the last sampling interval, by vmstat counter.",
        labels=["counter"],
    )
    for rate_name in nodesummary.ReclaimRates.__dataclass_fields__:
        rates.add_metric([rate_name], float(getattr(view.rates, rate_name)))
    yield rates
    if view.pressure is not None:
        avg = GaugeMetricFamily(
            names.PSI_AVG, "Memory PSI share of time stalled.", labels=["kind", "window"]
        )
        total = CounterMetricFamily(
            names.PSI_STALL_SECONDS, "Memory PSI total stall time.", labels=["kind"]
        )
        lines = [("some", view.pressure.some), ("full", view.pressure.full)]
        for kind, line in lines:
            if line is None:
                continue
            for window, value in (("10s", line.avg10), ("60s", line.avg60), ("300s", line.avg300)):
                avg.add_metric([kind, window], value / 100.0)
            total.add_metric([kind], line.total_us / 1e6)
        yield avg
        yield total
    state = GaugeMetricFamily(
        names.NODE_STATE, "1 for the agent's current node state.", labels=["state"]
    )
    for s in ("Open", "Closed", "Stale"):
        state.add_metric([s], 1.0 if view.state == s else 0.0)
    yield state
    if view.shrinker_exposed is not None:
        yield GaugeMetricFamily(
            names.SHRINKER_EXPOSED,
            "1 when the kernel has the global shrinker_rwsem (mount stalls under reclaim).",
            value=1.0 if view.shrinker_exposed else 0.0,
        )
    info = InfoMetricFamily(names.KERNEL_INFO, "Kernel release of the node.")
    info.add_metric([], {"release": view.kernel_release})
    yield info
    for name, help_text, value in (
        (names.MOUNT_P99_SECONDS, "p99 of mount(2) over the last BPF window.", view.mount_p99_s),
        (
            names.LOCK_WAIT_P99_SECONDS,
            "p99 of the mount-path lock wait over the last BPF window.",
            view.lock_wait_p99_s,
        ),
    ):
        if value is not None:
            yield GaugeMetricFamily(name, help_text, value=value)
    degraded = GaugeMetricFamily(
        names.SIGNAL_SOURCE_DEGRADED,
        "1 when a signal source is missing or partial; the reason is a label.",
        labels=["source", "reason"],
    )
    for source in ("procfs", "bpf"):
        reason = view.degraded.get(source, "")
        degraded.add_metric([source, reason], 1.0 if reason else 0.0)
    yield degraded
    up = GaugeMetricFamily(
        names.BPF_SCRIPT_UP, "1 while the bpftrace script runs.", labels=["script", "state"]
    )
    for script, script_state in sorted(view.bpf_scripts.items()):
        up.add_metric([script, script_state], 1.0 if script_state == "running" else 0.0)
    yield up
    by_map: dict[str, list[BpfHistogram]] = {}
    for hist in view.bpf_histograms:
        by_map.setdefault(hist.map_name, []).append(hist)
    for _, series in sorted(by_map.items()):
        yield _bpf_histogram(series)
    counters: dict[str, list[BpfCounter]] = {}
    for bpf_counter in view.bpf_counters:
        counters.setdefault(bpf_counter.map_name, []).append(bpf_counter)
    for map_name, cseries in sorted(counters.items()):
        first = cseries[0]
        labels = [first.label] if first.label else []
        c = CounterMetricFamily(names.bpf_metric(map_name, "counter"), first.help, labels=labels)
        for cs in sorted(cseries, key=lambda x: x.label_value):
            c.add_metric([cs.label_value] if labels else [], float(cs.value))
        yield c
    yield CounterMetricFamily(names.SAMPLES, "Samples taken.", value=float(view.samples))
    errors = CounterMetricFamily(
        names.SAMPLE_ERRORS, "Samples that failed, by kind.", labels=["kind"]
    )
    for kind in ("read", "parse"):
        errors.add_metric([kind], float(view.sample_errors.get(kind, 0)))
    yield errors
    yield GaugeMetricFamily(
        names.SAMPLE_DURATION_SECONDS,
        "Wall time of the last sample (read, parse, model).",
        value=view.last_sample_duration_s,
    )
    yield CounterMetricFamily(
        names.PUBLISHES, "Node summary publications.", value=float(view.publishes)
    )
    yield CounterMetricFamily(
        names.PUBLISH_ERRORS, "Failed Node summary publications.", value=float(view.publish_errors)
    )
    actions = CounterMetricFamily(
        names.PREPARATION_ACTIONS,
        "Preparation actions by kind and outcome (done, dry_run, failed, skipped).",
        labels=["action", "outcome"],
    )
    for (kind, outcome), n in sorted(view.preparation_actions.items()):
        actions.add_metric([kind, outcome], float(n))
    yield actions
    freed = CounterMetricFamily(
        names.PREPARATION_FREED_BYTES,
        "Headroom gained by preparation actions (measured), by kind.",
        labels=["action"],
    )
    for kind, n in sorted(view.preparation_freed_bytes.items()):
        freed.add_metric([kind], float(n))
    yield freed


class ViewCollector(registry.Collector):
    """A prometheus_client collector that renders the newest view on each scrape."""

    def __init__(self, current: View | None = None) -> None:
        self._view = current or View(headroom=None)

    def update(self, view: View) -> None:
        """Replace the view (atomic reference swap; scrapes see the old or the new one)."""
        self._view = view

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus_client on each scrape."""
        return families(self._view)


def render(view: View) -> bytes:
    """The whole /metrics text for one view (used by tests and ``--once``)."""
    reg = registry.CollectorRegistry(auto_describe=False)
    reg.register(ViewCollector(view))
    return exposition.generate_latest(reg)
