"""The node agent's loop: sample /proc, run the core model and state machine, publish, prepare.

Each tick (default 4 Hz) reads one procfs snapshot from the configured proc root, computes
headroom (``core.headroom``) and reclaim rates against the previous tick (``core.rates``),
adds the BPF window p99s when bpftrace runs (``bpf.running``), and steps the node state
machine (``core.nodestate``). The summary goes to the publisher thread when the state
changes or the publish interval has passed; the newest :class:`exporter.metrics.View`
replaces the one /metrics renders. A failed read or parse is counted and reported as the
procfs degradation reason; the machine then sees no observation and turns Stale after
``stale_after_s``, and nothing is published (the operator sees the summary age out).

Preparation: a request annotation (seen through a watch on the Node) with an id not yet
acknowledged is planned (``core.preparation``) and executed (``agent.preparing``) on the
sampling thread, between ticks, so measurements of freed memory are not raced by the
sampler; the acknowledgement annotation and an Event follow. With no operator request for
``operator_silent_s`` and headroom under ``own_threshold_bytes`` the agent plans for itself.

Latency signals, one rule: the agent's own state machine closes on the lock-wait p99 only
when its kernel is exposed to the shrinker_rwsem stall (DESIGN §2.2), and never on the mount
p99 (on 6.x its tail is CPU preemption during bursts, not memory: reference/host-6.18). Both
are published; the operator applies the policy's thresholds to them (``core.intake``:
``lockWaitThreshold`` on exposed nodes, ``mountLatencyThreshold`` on every node).

Time: ``mono`` (monotonic) for rates, windows and guardrails; ``wall`` (Unix) for what is
written on the Node. Both are injectable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from burstguard.agent import preparing, publishing
from burstguard.api import names, nodesummary, preparationack
from burstguard.api import preparation as request_api
from burstguard.bpf import running, specs
from burstguard.core import headroom, kernel, nodestate, preparation, publication, rates
from burstguard.exporter import metrics
from burstguard.k8s import nodetypes
from burstguard.procfs import errors, reading, snapshot

log = logging.getLogger("burstguard.agent")

MIB: Final = 2**20


@dataclass(frozen=True)
class Config:
    """Agent settings (flags of ``burstguard agent``)."""

    node_name: str
    """This node's name."""
    proc_root: str = "/proc"
    """Proc root; ``/host/proc`` in the DaemonSet."""
    hz: float = 4.0
    """Samples per second; default 4."""
    publish_interval_s: float = 10.0
    """Longest gap between publications (heartbeat), seconds; default 10."""
    reserve_bytes: int = 0
    """Subtracted from headroom (safety margin), bytes; default 0."""
    cache_credit_ratio: float = headroom.DEFAULT_CACHE_CREDIT_RATIO
    """Share of clean inactive page cache counted as headroom on kernels not exposed to the
    shrinker_rwsem stall (core.headroom); default 0.5."""
    close_below_bytes: int = 256 * MIB
    """Close when headroom is under this, bytes; default 256 MiB (one start)."""
    reopen_margin: float = 1.2
    """Reopen at close_below_bytes × this; default 1.2."""
    reopen_hold_s: float = 5.0
    """Healthy that long before reopening, seconds; default 5."""
    stale_after_s: float = 15.0
    """A sample older than this is no sample, seconds; default 15."""
    lock_wait_threshold_s: float = 0.020
    """Lock-wait p99 that closes an exposed node, seconds; default 20 ms."""
    bpf: bool = True
    """Run the bpftrace scripts the kernel supports; default on."""
    prepare: bool = True
    """Act on preparation requests and the own threshold; default on."""
    dry_run: bool = True
    """Plan and report preparation without executing; default on (``--prepare`` turns off)."""
    own_threshold_bytes: int = 0
    """Prepare on its own when headroom is under this and the operator is silent; 0 = off."""
    operator_silent_s: float = 120.0
    """How long without an operator request counts as silent, seconds; default 120."""
    preparation: preparation.Params = field(default_factory=preparation.Params)
    """Preparation guardrails."""
    vm_sysctl_dir: str = ""
    """Where ``compact_memory`` and ``drop_caches`` are written; default ``<proc_root>/sys/vm``."""


@dataclass(frozen=True)
class Sample:
    """Result of one tick."""

    summary: nodesummary.NodeSummary | None
    """The summary (None when the tick failed or the machine is Stale)."""
    view: metrics.View
    """What /metrics shows now."""
    machine: nodestate.Machine
    """The state machine after the tick."""


def _busy(prev: snapshot.Snapshot, cur: snapshot.Snapshot) -> tuple[bool, bool]:
    """(kswapd scanned, kcompactd/direct compaction ran) between two snapshots."""

    def grew(*counters: str) -> bool:
        return any(
            rates.counter_increase(prev.vmstat.get(c), cur.vmstat.get(c)) > 0 for c in counters
        )

    return grew("pgscan_kswapd"), grew("compact_daemon_wake", "compact_stall")


class NodeWriter(publishing.Writer, Protocol):
    """What the agent needs from ``k8s.nodes.NodeWriter``: publishing, plus the annotation and
    Event writes of a preparation acknowledgement. A protocol, so that the loop imports no
    kubernetes client (the incident lab runs it under emulation, where that import is slow)."""

    def set_annotations(self, values: dict[str, str]) -> None:
        """Merge ``values`` into the Node's annotations."""

    def event(self, reason: str, message: str, warning: bool = False, now: float = 0.0) -> None:
        """Post an Event about the Node."""


class Agent:
    """One node's agent; :meth:`tick` is one sample, :meth:`run` loops until stopped."""

    def __init__(
        self,
        config: Config,
        *,
        writer: NodeWriter | None = None,
        runner: running.Source | None = None,
        collector: metrics.ViewCollector | None = None,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.writer = writer
        self.runner = runner
        self.collector = collector or metrics.ViewCollector()
        self.mono = mono
        self.wall = wall
        self.params = nodestate.Params(
            close_below_bytes=config.close_below_bytes,
            reopen_margin=config.reopen_margin,
            reopen_hold_s=config.reopen_hold_s,
            stale_after_s=config.stale_after_s,
        )
        self.machine = nodestate.Machine()
        self.prev: snapshot.Snapshot | None = None
        self.last_obs: nodestate.Observation | None = None
        self.exposure: kernel.Exposure | None = None
        self.samples = 0
        self.sample_errors: dict[str, int] = {}
        self.procfs_error = ""
        self.last_tick_at: float | None = None
        self.last_view = metrics.View(headroom=None)
        self.last_summary: nodesummary.NodeSummary | None = None
        self.last_transition_wall = wall()
        self.submitted: publication.Published | None = None
        self.publisher = (
            publishing.Publisher(writer, on_error=self._publish_failed) if writer else None
        )
        self.prep_actions: dict[tuple[str, str], int] = {}
        self.prep_freed: dict[str, int] = {}
        self.executor = preparing.Executor(
            config.proc_root,
            self._measure_headroom,
            dry_run=config.dry_run,
            vm_sysctl_dir=config.vm_sysctl_dir,
            clock=mono,
        )
        self._request_lock = threading.Lock()
        self._request_text: str | None = None
        self.last_request_at: float | None = None
        self.acked_id: str | None = None
        self.last_ack: preparationack.PrepareAck | None = None
        self._node_now: preparation.NodeView | None = None

    # -- sampling ---------------------------------------------------------------------------

    def _publish_failed(self, message: str) -> None:
        log.warning("publish failed: %s", message)

    def _measure_headroom(self) -> int:
        snap = snapshot.read(self.config.proc_root, self.mono())
        return self._assess(snap).headroom_bytes

    def _assess(self, snap: snapshot.Snapshot) -> headroom.Headroom:
        return headroom.assess(
            snap,
            self.config.reserve_bytes,
            cache_credit_ratio=self.config.cache_credit_ratio,
            shrinker_exposed=self._exposure(snap.os_release).exposed,
        )

    def _exposure(self, release: str) -> kernel.Exposure:
        if self.exposure is None:
            evidence = reading.find_words(
                self.config.proc_root, "kallsyms", kernel.EVIDENCE_SYMBOLS
            )
            self.exposure = kernel.shrinker_exposure(release, evidence)
        return self.exposure

    def tick(self) -> Sample:
        """Take one sample, step the machine, refresh the view; publish if due."""
        started = self.mono()
        self.last_tick_at = started
        try:
            snap = snapshot.read(self.config.proc_root, started)
        except errors.ProcError as exc:
            kind = "parse" if isinstance(exc, errors.ProcParseError) else "read"
            self.sample_errors[kind] = self.sample_errors.get(kind, 0) + 1
            self.procfs_error = str(exc)
            self.machine = nodestate.step(self.machine, self.last_obs, self.params, started)
            view = self._view(None, nodesummary.ReclaimRates(), None, started)
            return Sample(None, view, self.machine)
        self.procfs_error = ""
        self.samples += 1
        model = self._assess(snap)
        if self.prev is None:
            reclaim = nodesummary.ReclaimRates()
            kswapd_busy = kcompactd_busy = False
        else:
            reclaim = rates.reclaim_rates(
                self.prev.vmstat, snap.vmstat, snap.taken_at - self.prev.taken_at
            )
            kswapd_busy, kcompactd_busy = _busy(self.prev, snap)
        self.prev = snap
        exposure = self._exposure(snap.os_release)
        bpf = self.runner.signals(started) if self.runner else None
        lock_over = bool(
            exposure.exposed
            and bpf is not None
            and bpf.lock_wait_p99_s is not None
            and bpf.lock_wait_p99_s > self.config.lock_wait_threshold_s
        )
        reclaim_active = (
            reclaim.pgscan_kswapd > 0 or reclaim.pgscan_direct > 0 or reclaim.allocstall > 0
        )
        obs = nodestate.Observation(
            sampled_at=started,
            headroom_bytes=model.headroom_bytes,
            reclaim_active=reclaim_active,
            latency_over=lock_over,
        )
        self.last_obs = obs
        before = self.machine.state
        self.machine = nodestate.step(self.machine, obs, self.params, started)
        if self.machine.state is not before:
            self.last_transition_wall = self.wall()
        summary = None
        if self.machine.state in (nodestate.State.OPEN, nodestate.State.CLOSED):
            summary = nodesummary.NodeSummary(
                sampled_at=self.wall(),
                state=self.machine.state.value,
                headroom_bytes=model.headroom_bytes,
                reclaimable_bytes=model.reclaimable_bytes,
                cache_credit_bytes=model.cache_credit_bytes,
                rates=reclaim,
                reasons=self.machine.reasons,
                kernel_release=snap.os_release,
                shrinker_exposed=bool(exposure.exposed),
                lock_wait_p99_s=bpf.lock_wait_p99_s if bpf else None,
                mount_p99_s=bpf.mount_p99_s if bpf else None,
                signal_source="procfs+bpf" if bpf is not None and bpf.running else "procfs",
                degraded_reason=self._bpf_degraded(bpf),
            )
            self.last_summary = summary
            self._maybe_publish(summary, started)
        self._node_now = preparation.NodeView(
            headroom_bytes=model.headroom_bytes,
            reclaimable_bytes=model.reclaimable_bytes,
            high_order_free_ratio=model.high_order_free_ratio,
            kswapd_busy=kswapd_busy,
            kcompactd_busy=kcompactd_busy,
            shrinker_exposed=exposure.exposed,
        )
        view = self._view(model, reclaim, snap, started, bpf)
        view_duration = self.mono() - started
        self.last_view = _with_duration(view, view_duration)
        self.collector.update(self.last_view)
        return Sample(summary, self.last_view, self.machine)

    def _bpf_degraded(self, bpf: running.Signals | None) -> str:
        if not self.config.bpf:
            return "bpf disabled (--no-bpf)"
        if bpf is None:
            return "bpf not started"
        return bpf.degraded_reason

    def _maybe_publish(self, summary: nodesummary.NodeSummary, now: float) -> None:
        if self.publisher is None:
            return
        if not publication.due(
            self.submitted,
            summary.state,
            summary.headroom_bytes,
            now,
            interval_s=self.config.publish_interval_s,
            reasons=summary.reasons,
        ):
            return
        self.submitted = publication.Published(
            summary.state, summary.headroom_bytes, now, summary.reasons
        )
        self.publisher.submit(
            summary, publishing.condition_for(summary, self.last_transition_wall, self.wall())
        )

    def _view(
        self,
        model: headroom.Headroom | None,
        reclaim: nodesummary.ReclaimRates,
        snap: snapshot.Snapshot | None,
        now: float,
        bpf: running.Signals | None = None,
    ) -> metrics.View:
        degraded: dict[str, str] = {}
        if self.procfs_error:
            degraded["procfs"] = self.procfs_error
        bpf_reason = (
            self._bpf_degraded(bpf) if model is not None else self.last_view.degraded.get("bpf", "")
        )
        if bpf_reason:
            degraded["bpf"] = bpf_reason
        hists, counters = (
            bpf_series([c.spec for c in self.runner.choices], self.runner.totals())
            if self.runner
            else ((), ())
        )
        base = self.last_view if model is None else None
        return metrics.View(
            headroom=model if model is not None else (base.headroom if base else None),
            rates=reclaim if model is not None else (base.rates if base else reclaim),
            pressure=snap.pressure if snap is not None else (base.pressure if base else None),
            state=self.machine.state.value,
            kernel_release=snap.os_release
            if snap is not None
            else (base.kernel_release if base else ""),
            shrinker_exposed=self.exposure.exposed if self.exposure else None,
            mount_p99_s=bpf.mount_p99_s if bpf else None,
            lock_wait_p99_s=bpf.lock_wait_p99_s if bpf else None,
            degraded=degraded,
            bpf_scripts={s.name: s.state for s in self.runner.statuses()} if self.runner else {},
            bpf_histograms=hists,
            bpf_counters=counters,
            samples=self.samples,
            sample_errors=dict(self.sample_errors),
            last_sample_duration_s=self.last_view.last_sample_duration_s,
            publishes=self.publisher.published if self.publisher else 0,
            publish_errors=self.publisher.errors if self.publisher else 0,
            preparation_actions=dict(self.prep_actions),
            preparation_freed_bytes=dict(self.prep_freed),
        )

    # -- preparation ------------------------------------------------------------------------

    def on_annotations(self, annotations: dict[str, str]) -> None:
        """Watch callback: remember the newest request (runs on the watch thread)."""
        with self._request_lock:
            self._request_text = annotations.get(names.PREPARE_REQUEST_ANNOTATION)
            if self.acked_id is None:
                ack_text = annotations.get(names.PREPARE_ACK_ANNOTATION)
                if ack_text:
                    with contextlib.suppress(preparationack.AckError):
                        self.acked_id = preparationack.decode(ack_text).id

    def prepare_step(self) -> preparationack.PrepareAck | None:
        """Serve a new request, or the own threshold; None when there was nothing to do."""
        if not self.config.prepare or self.last_summary is None:
            return None
        node = self._node_now
        if node is None:
            return None
        now = self.mono()
        with self._request_lock:
            text = self._request_text
        request = None
        if text:
            try:
                request = request_api.decode(text)
            except request_api.RequestError as exc:
                log.warning("ignoring preparation request: %s", exc)
        if request is not None and request.id != self.acked_id:
            self.last_request_at = now
            plan = preparation.plan(
                request.bytes_wanted,
                f"request:{request.id}",
                node,
                history=self.executor.history,
                params=self.config.preparation,
                now=now,
            )
            return self._execute(plan, request.id)
        want = preparation.own_want(
            node.headroom_bytes,
            self.config.own_threshold_bytes,
            self.last_request_at,
            self.config.operator_silent_s,
            now,
        )
        if want <= 0:
            return None
        plan = preparation.plan(
            want,
            "threshold",
            node,
            history=self.executor.history,
            params=self.config.preparation,
            now=now,
        )
        if not plan.actions:
            return None
        return self._execute(plan, f"self-{int(self.wall())}")

    def _execute(self, plan: preparation.Plan, request_id: str) -> preparationack.PrepareAck:
        exposed = self.exposure.exposed if self.exposure else None
        ack = self.executor.execute(plan, request_id, exposed, self.wall())
        self.acked_id = request_id
        self.last_ack = ack
        for result in ack.actions:
            key = (result.kind, result.outcome)
            self.prep_actions[key] = self.prep_actions.get(key, 0) + 1
            if result.outcome == "done":
                self.prep_freed[result.kind] = (
                    self.prep_freed.get(result.kind, 0) + result.freed_bytes
                )
        done = [f"{r.kind}={r.outcome}" for r in ack.actions if r.outcome != "skipped"]
        message = (
            f"{'dry-run ' if ack.dry_run else ''}preparation {request_id}: wanted "
            f"{ack.bytes_wanted / MIB:.0f} MiB, freed {ack.freed_bytes / MIB:.0f} MiB "
            f"({', '.join(done) or 'nothing to do'})"
        )
        log.info("%s", message)
        if self.writer is not None:
            try:
                self.writer.set_annotations(
                    {names.PREPARE_ACK_ANNOTATION: preparationack.encode(ack)}
                )
                failed = any(r.outcome == "failed" for r in ack.actions)
                self.writer.event("BurstguardPrepared", message, warning=failed, now=self.wall())
            except nodetypes.NodeApiError as exc:
                log.warning("acknowledging %s failed: %s", request_id, exc)
        return ack

    # -- loop -------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Liveness: the loop ticked recently (degraded sources do not make it unhealthy)."""
        if self.last_tick_at is None:
            return True, "starting"
        age = self.mono() - self.last_tick_at
        limit = max(10.0, 20.0 / self.config.hz)
        if age > limit:
            return False, f"no sample for {age:.1f} s"
        reasons = "; ".join(f"{k}: {v}" for k, v in self.last_view.degraded.items())
        return True, f"ok, state {self.machine.state.value}" + (
            f", degraded ({reasons})" if reasons else ""
        )

    def readiness(self) -> tuple[bool, str]:
        """Readiness: live, and (when publishing) a summary written in the last three
        publish intervals (plus 10 s for a slow apiserver)."""
        live, message = self.health()
        if not live or self.publisher is None:
            return live, message
        at = self.publisher.last_published_at
        if at is None:
            return False, "no summary published yet" + (
                f" ({self.publisher.last_error})" if self.publisher.last_error else ""
            )
        age = time.monotonic() - at
        limit = 3 * self.config.publish_interval_s + 10.0
        if age > limit:
            return False, f"last summary published {age:.0f} s ago ({self.publisher.last_error})"
        return True, message

    def run(self, stop: threading.Event) -> None:
        """Tick at ``hz`` until ``stop`` is set; serve preparation between ticks."""
        period = 1.0 / self.config.hz
        next_at = self.mono()
        while not stop.is_set():
            try:
                self.tick()
                self.prepare_step()
            except Exception:  # one bad tick must not kill the agent
                log.exception("tick failed")
            next_at += period
            delay = next_at - self.mono()
            if delay < 0:
                next_at = self.mono()
                delay = 0.0
            stop.wait(delay)

    def stop(self) -> None:
        """Flush the publisher and stop bpftrace."""
        if self.publisher is not None:
            self.publisher.stop()
        if self.runner is not None:
            self.runner.stop()


def _with_duration(view: metrics.View, duration_s: float) -> metrics.View:
    return dataclasses.replace(view, last_sample_duration_s=duration_s)


def bpf_series(
    script_specs: Iterable[specs.ScriptSpec], totals: Mapping[str, running.Totals]
) -> tuple[tuple[metrics.BpfHistogram, ...], tuple[metrics.BpfCounter, ...]]:
    """Convert cumulative bpftrace totals into exporter series, by the scripts' specs."""
    hists: list[metrics.BpfHistogram] = []
    counters: list[metrics.BpfCounter] = []
    for spec in script_specs:
        script_totals = totals.get(spec.name)
        if script_totals is None:
            continue
        for metric in spec.metrics:
            if metric.type == specs.HISTOGRAM:
                for (map_name, key), hist in sorted(script_totals.histograms.items()):
                    if map_name == metric.name:
                        hists.append(
                            metrics.BpfHistogram(
                                map_name=map_name,
                                unit=metric.unit,
                                label=metric.label,
                                label_value=key,
                                buckets=tuple((b.low, b.high, b.count) for b in hist),
                                help=metric.help,
                            )
                        )
            else:
                for (map_name, key), value in sorted(script_totals.counters.items()):
                    if map_name == metric.name:
                        counters.append(
                            metrics.BpfCounter(map_name, metric.label, key, value, metric.help)
                        )
    return tuple(hists), tuple(counters)
