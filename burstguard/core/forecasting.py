"""Demand forecasts: how many pods a policy's workloads will start, how much memory, when.

A burst is announced before its pods exist (DESIGN §7, "Forecasts"): a CronJob's schedule,
parallelism and pod template say when and how many; a suspended Job or a Kueue Workload
pending admission says how many, but not when (it may be released at any moment). The
operator turns those objects into the sources below (``k8s.demand``) and asks the nodes the
burst will use to prepare ``preparation.leadTime`` before the forecast time.

Pure: time is an argument, schedules are evaluated with croniter in the CronJob's
``timeZone`` (the controller manager's zone, UTC here, when unset), and nothing here reads
the API. The node class of a burst is its policy's node selection narrowed by the pod
template's own constraints (``placement.feasible``).
"""

from __future__ import annotations

import datetime
import statistics
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from croniter import croniter

from burstguard.api import policy as policy_api
from burstguard.core import pacing, placement, requesting

KIND_CRONJOB: Final = "CronJob"
KIND_JOB: Final = "Job"
KIND_WORKLOAD: Final = "Workload"

CONCURRENCY_ALLOW: Final = "Allow"
CONCURRENCY_FORBID: Final = "Forbid"
CONCURRENCY_REPLACE: Final = "Replace"

MAX_FIRES: Final = 64
"""Most fires of one schedule listed in one forecast (``* * * * *`` over a day is 1440)."""
MAX_LAG_S: Final = 300.0
"""Longest history lag believed, seconds: a run created later than this after its scheduled
time was a missed schedule caught up, not the usual delay."""
DEFAULT_TIME_ZONE: Final = "UTC"
"""Zone of a CronJob without ``timeZone``: kube-controller-manager's local zone, which is UTC
in the local control plane and in the chart's images."""


class ScheduleError(ValueError):
    """A schedule or time zone this forecast cannot evaluate."""


@dataclass(frozen=True)
class PodShape:
    """What every pod of one workload asks of a node."""

    memory_bytes: int | None
    """Σ container memory requests of one pod, bytes; None: the policy's podStartupMemory."""
    constraints: placement.Constraints = field(default_factory=placement.Constraints)
    """The template's node selector, required affinity and tolerations."""


@dataclass(frozen=True)
class CronSource:
    """A CronJob as the forecast needs it."""

    key: str
    """``namespace/name``."""
    schedule: str
    """``spec.schedule`` (five fields or a ``@`` descriptor)."""
    time_zone: str | None
    """``spec.timeZone`` (IANA name); None: :data:`DEFAULT_TIME_ZONE`."""
    pods: int
    """Pods one run starts at once: min(parallelism, completions), default 1."""
    shape: PodShape
    """Per-pod demand."""
    suspended: bool = False
    """``spec.suspend``: no run fires."""
    concurrency: str = CONCURRENCY_ALLOW
    """``spec.concurrencyPolicy``."""
    active: int = 0
    """Runs active now (``status.active``)."""
    lags_s: tuple[float, ...] = ()
    """Recent runs: seconds from their scheduled time to their Job's creation."""


@dataclass(frozen=True)
class PendingSource:
    """Demand that exists but waits for someone to let it go: a suspended Job or a Kueue
    Workload pending admission. It may land at any moment."""

    key: str
    """``namespace/name``."""
    kind: str
    """:data:`KIND_JOB` or :data:`KIND_WORKLOAD`."""
    pods: int
    """Pods it starts at once when let go."""
    shape: PodShape
    """Per-pod demand."""
    uid: str = ""
    """metadata.uid (a Workload's owner names its Job by uid)."""
    owner_uid: str = ""
    """The controller owner's uid (a Workload's Job), or ""."""


@dataclass(frozen=True)
class Burst:
    """Pods expected to land together."""

    source: str
    """``Kind namespace/name``."""
    at: float
    """When they are expected to land, Unix seconds; pending demand: the forecast's now."""
    pods: int
    """How many."""
    pod_memory_bytes: int
    """Memory of one pod, bytes."""
    shape: PodShape
    """What they ask of a node."""
    scheduled: bool
    """True when a schedule says when; False for pending demand."""

    @property
    def memory_bytes(self) -> int:
        """Memory of the whole burst, bytes."""
        return self.pods * self.pod_memory_bytes

    @property
    def id(self) -> str:
        """Names this burst across forecasts (a source and its landing second)."""
        return f"{self.source}@{int(self.at)}" if self.scheduled else self.source


@dataclass(frozen=True)
class Forecast:
    """Bursts in time order, and the sources that could not be read."""

    bursts: tuple[Burst, ...]
    """Earliest first."""
    errors: tuple[tuple[str, str], ...] = ()
    """(source, why) for every source left out."""

    def next(self) -> Burst | None:
        """The earliest burst, or None."""
        return self.bursts[0] if self.bursts else None


def _zone(name: str | None) -> datetime.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown timeZone {name!r}") from exc


def _check(schedule: str) -> None:
    """Kubernetes takes five fields or a descriptor (robfig/cron's standard parser); croniter
    also takes seconds and years fields and Jenkins' ``H``, which the apiserver refuses."""
    text = schedule.strip()
    if text.startswith("@"):
        if text not in {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                        "@hourly"}:  # fmt: skip
            raise ScheduleError(f"unsupported schedule descriptor {text!r}")
        return
    if len(text.split()) != 5 or "H" in text.upper().replace("TH", ""):
        raise ScheduleError(f"schedule {schedule!r} is not five cron fields")
    if not croniter.is_valid(text):
        raise ScheduleError(f"invalid schedule {schedule!r}")


def fires(
    schedule: str, time_zone: str | None, after: float, until: float, *, limit: int = MAX_FIRES
) -> tuple[float, ...]:
    """Times the schedule fires in ``(after, until]``, Unix seconds, at most ``limit``."""
    _check(schedule)
    start = datetime.datetime.fromtimestamp(after, tz=_zone(time_zone))
    try:
        it = croniter(schedule.strip(), start)
        out: list[float] = []
        while len(out) < limit:
            t = float(it.get_next(float))
            if t > until:
                break
            out.append(t)
    except (ValueError, KeyError) as exc:
        raise ScheduleError(f"cannot evaluate schedule {schedule!r}: {exc}") from exc
    return tuple(out)


def usual_lag(lags_s: Sequence[float]) -> float:
    """How long after its scheduled time a run's pods usually appear, seconds (median of
    the recent runs, caught-up misses left out; 0 without history)."""
    kept = [max(0.0, lag) for lag in lags_s if lag <= MAX_LAG_S]
    return float(statistics.median(kept)) if kept else 0.0


def cron_bursts(
    source: CronSource, now: float, horizon_s: float, default_pod_bytes: int
) -> tuple[Burst, ...]:
    """The runs of one CronJob that land within ``horizon_s`` of ``now``.

    ``Forbid`` with a run active now skips the next fire (the controller skips fires while
    a run is active; that it is still active then is the best guess available now).
    ``Replace`` and ``Allow`` start a full run at every fire. Raises :class:`ScheduleError`.
    """
    if source.suspended or source.pods <= 0:
        return ()
    lag = usual_lag(source.lags_s)
    times = fires(source.schedule, source.time_zone, now - lag, now + horizon_s - lag)
    if source.concurrency == CONCURRENCY_FORBID and source.active > 0:
        times = times[1:]
    per_pod = source.shape.memory_bytes or default_pod_bytes
    name = f"{KIND_CRONJOB} {source.key}"
    return tuple(
        Burst(name, t + lag, source.pods, per_pod, source.shape, scheduled=True) for t in times
    )


def pending_bursts(
    sources: Iterable[PendingSource], now: float, default_pod_bytes: int
) -> tuple[Burst, ...]:
    """Pending demand as bursts that may land now. A suspended Job that a pending Workload
    stands for (Kueue suspends the Jobs it queues) is counted once, as the Workload."""
    items = list(sources)
    represented = {s.owner_uid for s in items if s.kind == KIND_WORKLOAD and s.owner_uid}
    return tuple(
        Burst(
            f"{s.kind} {s.key}",
            now,
            s.pods,
            s.shape.memory_bytes or default_pod_bytes,
            s.shape,
            scheduled=False,
        )
        for s in items
        if s.pods > 0 and not (s.kind == KIND_JOB and s.uid and s.uid in represented)
    )


def forecast(
    crons: Iterable[CronSource],
    pending: Iterable[PendingSource],
    now: float,
    horizon_s: float,
    default_pod_bytes: int,
) -> Forecast:
    """Every burst landing within ``horizon_s`` of ``now``, earliest first."""
    bursts: list[Burst] = list(pending_bursts(pending, now, default_pod_bytes))
    errors: list[tuple[str, str]] = []
    for source in crons:
        try:
            bursts.extend(cron_bursts(source, now, horizon_s, default_pod_bytes))
        except ScheduleError as exc:
            errors.append((f"{KIND_CRONJOB} {source.key}", str(exc)))
    bursts.sort(key=lambda b: (b.at, b.source))
    return Forecast(tuple(bursts), tuple(sorted(errors)))


def due(bursts: Iterable[Burst], lead_s: float, now: float) -> tuple[Burst, ...]:
    """Bursts to prepare for now: landing within ``lead_s`` and not yet landed."""
    return tuple(b for b in bursts if now <= b.at <= now + lead_s or not b.scheduled)


@dataclass(frozen=True)
class AheadAsk:
    """A preparation request made for a forecast burst."""

    burst: Burst
    """The burst it prepares for."""
    ask: requesting.Ask
    """The node, the bytes to free, the node's share and its headroom."""
    nodes: int
    """Nodes the burst is spread over."""


def ahead(
    bursts: Iterable[Burst],
    nodes: Sequence[pacing.NodeView],
    prep: policy_api.Preparation,
    last_asked: Mapping[str, float],
    now: float,
    *,
    last_wanted: Mapping[str, int] | None = None,
) -> tuple[AheadAsk, ...]:
    """Requests that prepare the nodes each burst can use for its share of the burst.

    A burst is spread evenly over the policy's nodes its pods may land on (template
    constraints, taints) that are not closed, as ``requesting.plan`` spreads queued demand;
    each node short of its share is asked through ``requesting.plan``, so the same
    ``minBytes``, cooldown and re-ask rules apply, and the agent's own guardrails after them.
    """
    out: list[AheadAsk] = []
    asked = dict(last_asked)
    wanted = dict(last_wanted or {})
    for burst in bursts:
        usable = [
            n
            for n in nodes
            if placement.feasible(burst.shape.constraints, n.name, n.labels, n.taints)
        ]
        takers = [n for n in usable if n.state != pacing.NODE_CLOSED] or usable
        if not takers:
            continue
        share = burst.memory_bytes // len(takers)
        for node in takers:
            for ask in requesting.plan(share, [node], prep, asked, now, last_wanted=wanted):
                asked[ask.node] = now
                wanted[ask.node] = ask.bytes_wanted
                out.append(AheadAsk(burst, ask, len(takers)))
    return tuple(out)
