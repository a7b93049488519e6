"""The simulated fleet process: plays the node agent for kwok nodes (a SIMULATION).

One asyncio process serves every simulated node. It watches pods bound to those nodes and
Nodes' preparation requests, advances each node's memory model (core/nodemodel.py) in wall
time, and:

* **starts**: a pod bound to a simulated node begins a modelled start; when the model says it
  finished, the fleet writes the pod's status as started and Ready (kwok, with the stages of
  ``simulation.stages``, never starts a pod itself; it still completes Job pods after their run
  time and deletes pods). A pod that finishes or goes away gives its memory back;
* **publishes** the same NodeSummary the agent does (``simulated=True``,
  ``signal_source="simulation"``), rate-limited by the agent's rule (``core.publication``:
  at once on an Open/Closed change or a headroom change, else every ``publish_interval_s``);
  the ``BurstguardHeadroom`` condition is written on a state change only and its message
  starts with ``SIMULATED``;
* **prepares**: a new preparation request makes the model reclaim page cache and is
  acknowledged in the agent's format (action ``simulated_drop_caches``);
* **records** a per-node timeline (the ``burstguard recommend`` format) and outcome counters.

Writes go through a bounded number of concurrent requests; when the API server is slow, the
tick simply takes longer (the model advances by wall time, so nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from burstguard.agent import preparing
from burstguard.api import names, nodesummary, preparation, preparationack
from burstguard.core import preparation as planning
from burstguard.core import publication, recommending
from burstguard.k8s import apiclient, simnodes, watching
from burstguard.simulation import nodemodel

log = logging.getLogger(__name__)

SIMULATED_LABEL: Final = "burstguard.io/simulated"
"""Node label (value ``true``) on every simulated node."""
CONCURRENT_WRITES: Final = 16
"""Most pod-status and acknowledgement writes in flight at once."""
CONCURRENT_SUMMARY_WRITES: Final = 64
"""Most summary publications in flight at once (their own pool: starts never wait on them;
1000 nodes every 10 s at ~1 s per write under load need ~100)."""
FLUSH_TIMEOUT_S: Final = 10.0
"""Longest wait for in-flight writes when the fleet stops, seconds."""
HOST_IP: Final = "10.0.0.1"
"""hostIP of simulated pods (the devcluster's kwok ``--node-ip``)."""


@dataclass(frozen=True)
class Config:
    """How the fleet behaves."""

    publish_interval_s: float = 10.0
    """Longest gap between summaries without a state change, seconds (agent default 10)."""
    tick_s: float = 0.25
    """Model and publish cadence, seconds (the agent samples at 4 Hz)."""
    default_demand_bytes: int = 256 * 2**20
    """Memory a start faults in when the pod requests none, bytes."""
    reserve_bytes: int = 0
    """Subtracted from headroom, as the agent's ``--reserve``, bytes."""
    record_every_s: float | None = 1.0
    """Timeline resolution, seconds; None records nothing."""
    seed: int = 1
    """Seed of the model's random source."""
    dry_run: bool = True
    """Plan preparation and report it without acting, as the agent does with the chart's
    default ``agent.preparation.enabled: false``."""
    preparation: planning.Params = field(default_factory=planning.Params)
    """The agent's preparation guardrails (default: the agent's defaults: drop_caches off,
    300 s cooldown, 6 actions per hour)."""


@dataclass
class NodeSim:
    """One simulated node's model and publication memory."""

    params: nodemodel.Params
    state: nodemodel.State
    last_counters: nodemodel.Counters = field(default_factory=nodemodel.Counters)
    last_at: float = 0.0
    published: publication.Published | None = None
    transition_at: float = 0.0
    acked: str = ""
    samples: list[recommending.Sample] = field(default_factory=list)
    executor: preparing.Executor | None = None


class ModelExecutor(preparing.Executor):
    """The agent's executor (same guardrails, history, slab rule and acknowledgement) writing
    to the node model instead of ``/proc``: ``drop_caches`` empties the model's page cache at
    once (host S3a: ~15 GB in 0.10 s), compaction frees nothing, cgroup reclaim is not
    modelled and says so."""

    def __init__(self, sim: NodeSim, reserve_bytes: int, dry_run: bool) -> None:
        super().__init__(
            proc_root="/simulated/proc",
            measure_headroom=lambda: nodemodel.headroom_bytes(sim.state, sim.params, reserve_bytes),
            dry_run=dry_run,
            clock=time.time,
        )
        self.sim = sim

    def _write(self, path: str, value: str) -> str:
        if path.endswith("drop_caches"):
            self.sim.state = nodemodel.drop_page_cache(self.sim.state)
            return ""
        if path.endswith("compact_memory"):
            return ""
        return f"{path}: cgroup reclaim is not modelled"


@dataclass(frozen=True)
class Prepared:
    """One preparation request the fleet served."""

    node: str
    at: float
    """When the fleet saw the request, Unix seconds."""
    bytes_wanted: int
    freed_bytes: int
    """What the simulated agent freed for it, bytes (0 in a dry run)."""


@dataclass
class Stats:
    """What the process did."""

    publishes: int = 0
    coalesced: int = 0
    """Summaries superseded by a newer one before their write started."""
    conditions: int = 0
    start_marks: int = 0
    acks: int = 0
    errors: int = 0
    starts_seen: int = 0
    started_durations: list[float] = field(default_factory=list)
    last_started_at: float = 0.0
    """Wall time the last modelled start finished, Unix seconds."""
    prepared: list[Prepared] = field(default_factory=list)
    """Every preparation request served, in order."""


class _Pods:
    """Pod store feeding bind/gone events to the fleet (only pods on simulated nodes)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.where: dict[str, str] = {}
        self.containers: dict[str, list[tuple[str, str]]] = {}

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        seen = set()
        for obj in objects:
            key = self._apply(dict(obj), deleted=False)
            if key:
                seen.add(key)
        for key in set(self.where) - seen:
            self.fleet.gone(key, self.where.pop(key))

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        self._apply(dict(obj), deleted=kind == "DELETED")

    def _apply(self, obj: dict[str, Any], *, deleted: bool) -> str | None:
        key, node, phase, deleting, memory, image = simnodes.pod_facts(obj)
        if node is None or node not in self.fleet.nodes:
            return None
        finished = deleted or deleting or phase in ("Succeeded", "Failed")
        if finished:
            if key in self.where:
                self.fleet.gone(key, self.where.pop(key))
                self.fleet.containers.pop(key, None)
            return None
        if key not in self.where:
            self.where[key] = node
            if phase == "Pending":
                self.fleet.containers[key] = simnodes.containers_of(obj)
                self.fleet.bound(key, node, memory, image)
        return key


class _Nodes:
    """Node store: preparation requests on simulated nodes."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        for obj in objects:
            self.apply("ADDED", obj)

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        text = (meta.get("annotations") or {}).get(names.PREPARE_REQUEST_ANNOTATION)
        if kind != "DELETED" and text and name in self.fleet.nodes:
            try:
                self.fleet.requested(name, preparation.decode(text))
            except preparation.RequestError as exc:
                log.warning("node %s: bad preparation request: %s", name, exc)


class Fleet:
    """Every simulated node of one cluster."""

    def __init__(
        self,
        api: apiclient.Api,
        nodes: Mapping[str, tuple[nodemodel.Params, nodemodel.State]],
        config: Config = Config(),
    ) -> None:
        self.api = api
        self.config = config
        self.rng = random.Random(config.seed)
        now = time.time()
        self.nodes: dict[str, NodeSim] = {
            name: NodeSim(params, _retime(state, now), state.counters, now)
            for name, (params, state) in nodes.items()
        }
        self.stats = Stats()
        self.containers: dict[str, list[tuple[str, str]]] = {}
        """Pod key -> (container name, image), for the started status."""
        self._ips = 0
        self._writes = asyncio.Semaphore(CONCURRENT_WRITES)
        self._summary_writes = asyncio.Semaphore(CONCURRENT_SUMMARY_WRITES)
        self._publishing: set[str] = set()
        self._latest: dict[str, nodesummary.NodeSummary] = {}
        self._pending: dict[str, tuple[nodesummary.NodeSummary, bool, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_record = 0.0

    def reset(self, nodes: Mapping[str, tuple[nodemodel.Params, nodemodel.State]]) -> None:
        """Put every node back to the given state (same start for a second run); keeps
        publication memory, clears timelines and start durations."""
        now = time.time()
        for name, (params, state) in nodes.items():
            sim = self.nodes[name]
            sim.params, sim.state = params, _retime(state, now)
            sim.last_counters, sim.last_at = sim.state.counters, now
            sim.samples.clear()
            sim.executor = None  # a new run starts with no preparation history
        self.stats.started_durations.clear()
        self.stats.last_started_at = 0.0

    # -- events from the informers ---------------------------------------------------------------

    def bound(self, key: str, node: str, memory: int | None, image: str) -> None:
        """A pod was bound to a simulated node: its start begins now."""
        sim = self.nodes[node]
        now = time.time()
        sim.state, done = nodemodel.advance(sim.state, sim.params, now, self.rng)
        self._finished(done)
        demand = memory or self.config.default_demand_bytes
        sim.state = nodemodel.start(sim.state, sim.params, key, demand, now=now, image=image)
        self.stats.starts_seen += 1

    def gone(self, key: str, node: str) -> None:
        """A pod finished or was deleted: its memory returns."""
        sim = self.nodes[node]
        sim.state = nodemodel.stop(sim.state, key)

    def requested(self, node: str, request: preparation.PrepareRequest) -> None:
        """A preparation request: plan it with the agent's planner and guardrails
        (``core.preparation``), execute it with the agent's executor on the model, and
        acknowledge it in the agent's format."""
        sim = self.nodes[node]
        if request.id == sim.acked:
            return
        sim.acked = request.id
        now = time.time()
        sim.state, done = nodemodel.advance(sim.state, sim.params, now, self.rng)
        self._finished(done)
        if sim.executor is None:
            sim.executor = ModelExecutor(sim, self.config.reserve_bytes, self.config.dry_run)
        view = planning.NodeView(
            headroom_bytes=nodemodel.headroom_bytes(
                sim.state, sim.params, self.config.reserve_bytes
            ),
            reclaimable_bytes=sim.state.cache_bytes,
            high_order_free_ratio=None,
            kswapd_busy=sim.state.kswapd_awake,
            kcompactd_busy=False,
            shrinker_exposed=sim.params.shrinker_exposed,
        )
        plan = planning.plan(
            request.bytes_wanted,
            f"request:{request.id}",
            view,
            history=sim.executor.history,
            params=self.config.preparation,
            now=now,
        )
        ack = sim.executor.execute(plan, request.id, sim.params.shrinker_exposed, now)
        self.stats.acks += 1
        self.stats.prepared.append(Prepared(node, now, request.bytes_wanted, ack.freed_bytes))
        self._spawn(
            simnodes.annotate_node(
                self.api, node, {names.PREPARE_ACK_ANNOTATION: preparationack.encode(ack)}
            )
        )

    # -- the loop --------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        async def guarded() -> None:
            async with self._writes:
                try:
                    await coro
                except Exception as exc:  # counted and logged; the next tick retries state
                    self.stats.errors += 1
                    log.warning("simulated fleet write failed: %s", exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finished(self, done: tuple[nodemodel.Started, ...]) -> None:
        for started in done:
            self.stats.start_marks += 1
            self.stats.started_durations.append(started.duration_s)
            self.stats.last_started_at = max(self.stats.last_started_at, started.at)
            self._ips += 1
            pod_ip = f"10.244.{(self._ips >> 8) & 255}.{self._ips & 255}"
            self._spawn(
                simnodes.mark_started(
                    self.api,
                    started.key,
                    self.containers.get(started.key) or [("main", "")],
                    pod_ip=pod_ip,
                    host_ip=HOST_IP,
                    now=started.at,
                )
            )

    def tick(self, now: float) -> None:
        """Advance every node to ``now``; mark finished starts; publish what is due."""
        record = (
            self.config.record_every_s is not None
            and now - self._last_record >= self.config.record_every_s
        )
        if record:
            self._last_record = now
        for name, sim in self.nodes.items():
            sim.state, done = nodemodel.advance(sim.state, sim.params, now, self.rng)
            self._finished(done)
            summary = nodemodel.summarize(
                sim.state,
                sim.params,
                sim.last_counters,
                elapsed_s=max(now - sim.last_at, 1e-3),
                now=now,
                reserve_bytes=self.config.reserve_bytes,
            )
            sim.last_counters, sim.last_at = sim.state.counters, now
            if record:
                sim.samples.append(
                    recommending.Sample(
                        at=now,
                        headroom_bytes=float(summary.headroom_bytes),
                        pgscan_kswapd=summary.rates.pgscan_kswapd,
                        allocstall=summary.rates.allocstall,
                        starting=float(sim.state.starting),
                        starts_total=float(sim.state.counters.starts_done),
                    )
                )
            self._latest[name] = summary
            changed = sim.published is None or summary.state != sim.published.state
            if publication.due(
                sim.published,
                summary.state,
                summary.headroom_bytes,
                now,
                interval_s=self.config.publish_interval_s,
            ):
                self._publish(name, sim, summary, changed, now)

    def _publish(
        self, name: str, sim: NodeSim, summary: nodesummary.NodeSummary, changed: bool, now: float
    ) -> None:
        """Publish, newest wins: while a node's write is in flight, only the latest summary
        waits for it (as the agent's Publisher), so a slow API server never builds a backlog
        of stale summaries."""
        sim.published = publication.Published(summary.state, summary.headroom_bytes, now)
        if changed:
            sim.transition_at = now
        if name in self._publishing:
            _, was_changed, _ = self._pending.get(name, (summary, False, now))
            self._pending[name] = (summary, changed or was_changed, now)
            self.stats.coalesced += 1
            return
        self._publishing.add(name)
        task = asyncio.get_running_loop().create_task(
            self._write_summary(name, summary, changed, now)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_summary(
        self, name: str, summary: nodesummary.NodeSummary, changed: bool, now: float
    ) -> None:
        try:
            async with self._summary_writes:
                # The newest model state when the write starts, not when it was queued: under
                # a slow API server a write can wait long for a slot.
                summary = self._latest.get(name, summary)
                self.stats.publishes += 1
                await simnodes.annotate_node(
                    self.api, name, {names.SUMMARY_ANNOTATION: nodesummary.encode(summary)}
                )
                if changed:
                    self.stats.conditions += 1
                    reasons = ", ".join(summary.reasons) or "quiet"
                    await simnodes.set_condition(
                        self.api,
                        name,
                        is_open=summary.state == "Open",
                        message=(
                            f"SIMULATED {summary.state}: {reasons}; modelled headroom "
                            f"{summary.headroom_bytes / 2**20:.0f} MiB"
                        ),
                        last_transition=now,
                        now=now,
                    )
        except Exception as exc:  # counted and logged; the next publication carries the state
            self.stats.errors += 1
            log.warning("simulated fleet publish on %s failed: %s", name, exc)
        finally:
            self._publishing.discard(name)
            waiting = self._pending.pop(name, None)
            if waiting is not None:
                pending, pending_changed, at = waiting
                self._publishing.add(name)
                task = asyncio.get_running_loop().create_task(
                    self._write_summary(name, pending, pending_changed, at)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch pods and nodes, tick until ``stop`` is set, then flush the writes."""
        pods = watching.Informer(self.api, "/api/v1/pods", _Pods(self))
        nodes = watching.Informer(
            self.api, "/api/v1/nodes", _Nodes(self), label_selector=f"{SIMULATED_LABEL}=true"
        )
        informers = [asyncio.create_task(pods.run()), asyncio.create_task(nodes.run())]
        try:
            while not stop.is_set():
                self.tick(time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.tick_s)
        finally:
            for task in informers:
                task.cancel()
            await asyncio.gather(*informers, return_exceptions=True)
            if self._tasks:
                # Flush what is in flight, but never hang on an overloaded API server.
                _, late = await asyncio.wait(list(self._tasks), timeout=FLUSH_TIMEOUT_S)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)

    # -- results ---------------------------------------------------------------------------------

    def timeline(self) -> tuple[recommending.NodeHistory, ...]:
        """Recorded per-node history (simulated)."""
        return tuple(
            recommending.NodeHistory(
                node=name,
                samples=tuple(sim.samples),
                kernel_release=sim.params.kernel_release,
                shrinker_exposed=sim.params.shrinker_exposed,
                cores=sim.params.cores,
                memory_bytes=sim.params.memory_bytes,
                simulated=True,
            )
            for name, sim in sorted(self.nodes.items())
        )

    def outcome(self) -> dict[str, float]:
        """Fleet totals (core/nodemodel.outcome) plus start durations."""
        totals = nodemodel.outcome({n: s.state for n, s in self.nodes.items()})
        durations = sorted(self.stats.started_durations)
        if durations:
            totals["start_p50_s"] = durations[len(durations) // 2]
            totals["start_max_s"] = durations[-1]
        return totals

    def starting(self) -> int:
        """Pods starting across the fleet."""
        return sum(s.state.starting for s in self.nodes.values())


def _retime(state: nodemodel.State, now: float) -> nodemodel.State:
    """A state made at another time, moved to ``now`` (nothing happens in between)."""
    return replace(state, at=now)
