"""The per-policy pacer loop and the janitor: gather a snapshot, call core, apply the plan.

Each tick of :class:`PolicyLoop` (one per BurstPolicy, run by a kopf daemon on every replica
but ticking only in the leader, see ``handlers.pace``) does, with ``now`` read once:

1. steer: every node the policy owns goes through ``core.intake.steer`` (state machine with
   hysteresis); Enforce writes changed ``burstguard.io/intake`` labels, DryRun records the
   closures it would have made;
2. pace: Enforce releases overdue pods (with an Event) and then what ``core.pacing.plan``
   allows; DryRun runs ``core.shadow.step`` on its virtual queue and records would-have delays;
3. prepare (Enforce): ``core.requesting.plan`` -> preparation requests on short nodes;
4. report: status (at most every ``status_interval_s``, only when changed) and metrics.

:class:`Janitor` sweeps only in the leader and is idempotent (its writes are guarded by the
same ``test`` op): it releases gated pods whose policy is gone, invalid or DryRun or does
not select them (a pod can set burstguard's gate and annotation on itself: the annotation
is a cache of the webhook's decision, re-checked by ``core.selection.refusal``), and
removes intake labels from nodes no Enforce policy guards any more. Nothing here decides;
decisions are the pure functions in ``core``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping
from typing import Any

from burstguard.api import names, preparation, times
from burstguard.api import policy as policy_api
from burstguard.core import (
    forecasting,
    intake,
    nodestate,
    pacing,
    requesting,
    safety,
    selection,
    shadow,
)
from burstguard.exporter import operator_metrics as metrics
from burstguard.k8s import apiclient, events, nodeviews, pods, policies
from burstguard.operator import runtime as runtime_

log = logging.getLogger(__name__)

LABEL_RETRY_S = 30.0
"""A label write not yet seen in the node watch is repeated after this long, seconds."""

PENDING_RELEASE_TIMEOUT_S = 60.0
"""A released pod not seen ungated this long after its patch is planned again, seconds. Only
a watch that lost the event gets here (a failed patch drops the entry at once); at 10 s a
saturated apiserver's watch lag made 1.6 % of releases in the 1000-node benchmark repeat."""
FORECAST_EVERY_S = 1.0
"""Least time between two forecasts of one policy, seconds (cron schedules have minutes)."""
FORECAST_HORIZON_S = 3600.0
"""How far ahead the status shows the next burst, seconds (leadTime is at most 1h)."""
STARTED_MEMORY_S = 120.0
"""How long a finished start is remembered against its node's summary, seconds (every
summary sampled later shows its memory; the agent publishes at least every 10 s)."""


async def pod_event(
    api: apiclient.Api, rec: pods.PodRecord, *, reason: str, message: str, warning: bool
) -> None:
    """Post an Event on a pod and count the write (``events.emit`` logs failures itself)."""
    await events.emit(
        api,
        kind="Pod",
        name=rec.name,
        namespace=rec.namespace,
        uid=rec.uid,
        reason=reason,
        message=message,
        warning=warning,
    )
    metrics.API_WRITES.labels("event").inc()


class PolicyLoop:
    """Paces (Enforce) or shadows (DryRun) one policy."""

    def __init__(self, name: str, rt: runtime_.Runtime) -> None:
        self.name = name
        self.rt = rt
        self.bucket: pacing.TokenBucket | None = None
        self.machines: dict[str, nodestate.Machine] = {}
        self.label_writes: dict[str, tuple[str, float]] = {}
        self.asked: dict[str, requesting.Asked] = {}
        self.answers: dict[str, requesting.Answer] = {}
        self.released_total = 0
        self.overdue_total = 0
        self.would_have = rt.shadow_results.setdefault(name, shadow.WouldHave())
        self.last_status: dict[str, Any] | None = None
        self.last_status_at = 0.0
        self.last_event_at = 0.0
        self.ready_condition: dict[str, Any] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.node_counts: dict[str, int] = {}
        self.exported_states: dict[str, str] = {}
        self.fallback = ""
        self.gated: dict[str, pods.PodRecord] = {}
        """This tick's gated pods the policy really selects (the annotation only proposes)."""
        self.forecast = forecasting.Forecast(())
        self.forecast_at = float("-inf")
        self.prepared: dict[str, float] = {}
        """Burst id -> when its nodes were asked to prepare (each burst is prepared once)."""
        self.forecast_status: dict[str, Any] = {}
        self.prepared_status: dict[str, Any] = {}

    # -- helpers ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _owned_nodes(self, policy: policy_api.BurstPolicy) -> tuple[list[str], int]:
        ordered = self.rt.policy_store.ordered
        mine, lost = [], 0
        for node in self.rt.node_store.nodes.values():
            owner, losers = selection.node_owner(ordered, node.labels)
            if owner is not None and owner.name == policy.name:
                mine.append(node.name)
            elif policy.name in losers:
                lost += 1
        return mine, lost

    # -- one tick ----------------------------------------------------------------------------

    async def tick(self) -> None:
        """Decide and apply one tick."""
        started = time.perf_counter()
        policy = self.rt.policy_store.policies.get(self.name)
        if policy is None:
            return
        now = time.time()
        store = self.rt.pod_store
        self.gated = self.rt.paced_by(store.gated.get(self.name, {}))
        if not policy.valid:
            await self._report(policy, now, nodes=[], conflicts_nodes=0)
            return
        node_names, lost_nodes = self._owned_nodes(policy)
        self.rt.settle_releases(now, PENDING_RELEASE_TIMEOUT_S, STARTED_MEMORY_S)
        views = self._steer(policy, node_names, now)
        if policy.spec.enforcing:
            self._pace(policy, views, now)
            self._prepare(policy, views, now)
            self._prepare_ahead(policy, views, now)
        else:
            self._shadow(policy, views, now)
            self._forecast(policy, now)
        await self._report(policy, now, nodes=views, conflicts_nodes=lost_nodes)
        metrics.TICK_DURATION.labels(self.name).observe(time.perf_counter() - started)

    def _steer(
        self, policy: policy_api.BurstPolicy, node_names: list[str], now: float
    ) -> list[pacing.NodeView]:
        spec = policy.spec
        book = self.rt.pod_store.ledger
        default = spec.pacing.pod_startup_memory_bytes
        views: list[pacing.NodeView] = []
        counts = {"open": 0, "closed": 0, "stale": 0}
        stale_reasons: set[str] = set()
        for name in node_names:
            node = self.rt.node_store.nodes[name]
            if node.summary is not None:
                book.summarized(name, node.summary.sampled_at)
            starting = book.starting(name)
            before = self.machines.get(name, nodestate.Machine())
            verdict = intake.steer(before, node.summary, spec, starting=starting, now=now)
            self.machines[name] = verdict.machine
            counts[verdict.pacing_state] += 1
            if verdict.pacing_state == pacing.NODE_STALE:
                stale_reasons.add(node.summary_error or "no fresh summary")
            closed_now = verdict.machine.state is nodestate.State.CLOSED
            if closed_now and before.state is not nodestate.State.CLOSED and not spec.enforcing:
                closure = shadow.Closure(name, now, verdict.machine.reasons)
                self.would_have = shadow.record(self.would_have, closures=[closure])
                metrics.SHADOW_CLOSURES.labels(self.name).inc()
            if spec.enforcing and node.schedulable:
                self._label(name, node, verdict.label)
            if self.exported_states.get(name) != verdict.pacing_state:
                self.exported_states[name] = verdict.pacing_state
                for state in ("open", "closed", "stale"):
                    metrics.NODE_INTAKE.labels(name, state).set(
                        1.0 if state == verdict.pacing_state else 0.0
                    )
            if not node.schedulable:
                continue
            headroom = None
            credit = 0
            sampled_at = node.summary.sampled_at if node.summary is not None else None
            if node.summary is not None and verdict.pacing_state != pacing.NODE_STALE:
                # The agent's post-preparation measurement, when newer, replaces the summary's.
                headroom, sampled_at = requesting.headroom_now(
                    node.summary.headroom_bytes,
                    node.summary.sampled_at,
                    self._answer(name, node),
                )
                # The summary's cache credit, unless a newer measurement replaced it (after a
                # cache drop there is next to none left to credit).
                if sampled_at == node.summary.sampled_at:
                    credit = node.summary.cache_credit_bytes
            views.append(
                pacing.NodeView(
                    name=name,
                    state=verdict.pacing_state,
                    starting=starting,
                    headroom_bytes=headroom,
                    cache_credit_bytes=credit,
                    committed_bytes=book.committed_bytes(
                        name, sampled_at=sampled_at, default_bytes=default
                    ),
                    cores=node.cores,
                    labels=node.labels,
                    taints=node.taints,
                )
            )
        self.node_counts = {**counts, "total": len(node_names)}
        for state, count in counts.items():
            metrics.POLICY_NODES.labels(self.name, state).set(count)
        self.fallback = (
            f"{counts['stale']} of {len(node_names)} nodes have no fresh summary "
            f"({'; '.join(sorted(stale_reasons))[:200]}): paced by maxStartingPerNode alone"
            if counts["stale"]
            else ""
        )
        return views

    def _answer(self, name: str, node: nodeviews.NodeRecord) -> requesting.Answer | None:
        """What became of the last request to ``name``; counts and logs each answer once."""
        asked = self.asked.get(name)
        if asked is None:
            return None
        ans = requesting.answer(asked, node.ack)
        before = self.answers.get(name)
        self.answers[name] = ans
        if ans.state != requesting.PENDING and (before is None or before.state != ans.state):
            metrics.PREPARE_ANSWERS.labels(self.name, ans.state).inc()
            log.info(
                "node %s answered preparation %s: %s, freed %d of %d B%s",
                name,
                asked.id,
                ans.state,
                ans.freed_bytes,
                asked.bytes_wanted,
                f" ({', '.join(ans.reasons)})" if ans.reasons else "",
            )
        return ans

    def _label(self, name: str, node: nodeviews.NodeRecord, value: str) -> None:
        """Write the intake label when it differs, once per value until the watch shows it."""
        now = time.monotonic()
        if node.intake == value:
            self.label_writes.pop(name, None)
            return
        written = self.label_writes.get(name)
        if written is not None and written[0] == value and now - written[1] < LABEL_RETRY_S:
            return  # written already; a slow watch has not shown it yet
        self.label_writes[name] = (value, now)

        async def write() -> None:
            try:
                await nodeviews.set_intake(self.rt.api, name, value)
                metrics.API_WRITES.labels("label").inc()
            except apiclient.ApiError as exc:
                log.warning("could not label node %s intake=%s: %s", name, value, exc)
                self.label_writes.pop(name, None)

        self._spawn(write())

    def _pace(
        self, policy: policy_api.BurstPolicy, views: list[pacing.NodeView], now: float
    ) -> None:
        rules = policy.spec.pacing
        if self.bucket is None:
            self.bucket = pacing.full_bucket(rules.release_per_second, rules.burst, now)
        elif (self.bucket.rate, self.bucket.capacity) != (rules.release_per_second, rules.burst):
            self.bucket = pacing.retune(self.bucket, rules.release_per_second, rules.burst)
        book = self.rt.pod_store.ledger
        gated = self.gated  # only the pods this policy really selects
        queue: dict[str, pacing.QueuedPod] = {}
        # Unpinned pods released and not yet bound could land anywhere: they use up room
        # first. Pinned ones are counted against their node in the ledger.
        in_flight = [e.memory_bytes or 0 for e in book.unplaced(self.name)]
        for key, rec in gated.items():
            if book.assumed(key):
                continue  # its release is under way
            if rec.queued is not None:
                queue[key] = rec.queued
        late = pacing.overdue(queue.values(), rules.max_gate_seconds, now)
        for q in late:
            del queue[q.key]
            self._release(gated[q.key], now, reason="overdue")
        decided = pacing.plan(
            queue.values(),
            views,
            rules,
            bucket=self.bucket,
            now=now,
            in_flight=in_flight,
            pin=rules.pin_to_node,
        )
        self.bucket = decided.bucket
        for q in decided.release:
            self._release(gated[q.key], now, reason="paced", node=decided.targets.get(q.key))

    def _release(
        self, rec: pods.PodRecord, now: float, *, reason: str, node: str | None = None
    ) -> None:
        self.rt.pod_store.ledger.release(
            rec.key, node=node, memory_bytes=rec.memory_bytes, policy=self.name, now=now
        )
        rt = self.rt

        async def run() -> None:
            try:
                result = await rt.send_release(rec, node)
            except Exception as exc:
                log.warning("release of %s failed: %s", rec.key, exc)
                return
            if result != "released":
                return
            waited = max(0.0, now - rec.created_at)
            metrics.RELEASES.labels(self.name, reason).inc()
            metrics.GATE_WAIT.labels(self.name).observe(waited)
            self.released_total += 1
            if reason != "paced":
                self.overdue_total += 1
            if reason != "paced" or rt.options.routine_release_events:
                message = (
                    f"gated {waited:.0f}s, longer than maxGateSeconds; released anyway"
                    if reason != "paced"
                    else f"released by policy {self.name} after {waited:.1f}s"
                )
                await pod_event(
                    rt.api,
                    rec,
                    reason="Released" if reason == "paced" else "ReleasedOverdue",
                    message=message,
                    warning=reason != "paced",
                )

        self._spawn(run())

    def _prepare(
        self, policy: policy_api.BurstPolicy, views: list[pacing.NodeView], now: float
    ) -> None:
        gated = self.gated
        if not gated:
            return
        default = policy.spec.pacing.pod_startup_memory_bytes
        # Pods another controller still holds are not coming yet (DESIGN §7).
        queued = sum(r.memory_bytes or default for r in gated.values() if r.queued is not None)
        asks = requesting.plan(
            queued,
            views,
            policy.spec.preparation,
            {node: a.at for node, a in self.asked.items()},
            now,
            last_wanted={node: a.bytes_wanted for node, a in self.asked.items()},
            answers=self.answers,
        )
        for ask in asks:
            asked = requesting.Asked(f"{self.name}-{int(now * 1000)}", now, ask.bytes_wanted)
            self.asked[ask.node] = asked
            self.answers.pop(ask.node, None)
            request = preparation.PrepareRequest(
                id=asked.id,
                bytes_wanted=ask.bytes_wanted,
                requested_at=now,
                policy=self.name,
                reason=f"queued share {ask.share_bytes} B, headroom {ask.headroom_bytes} B",
            )

            async def write(
                node: str = ask.node, req: preparation.PrepareRequest = request
            ) -> None:
                try:
                    await nodeviews.write_prepare_request(self.rt.api, node, req)
                    metrics.API_WRITES.labels("prepare").inc()
                    metrics.PREPARE_REQUESTS.labels(self.name).inc()
                except apiclient.ApiError as exc:
                    log.warning("could not write prepare request on %s: %s", node, exc)

            self._spawn(write())

    def _forecast(self, policy: policy_api.BurstPolicy, now: float) -> forecasting.Forecast:
        """The policy's forecast, at most every ``FORECAST_EVERY_S``."""
        if now - self.forecast_at < FORECAST_EVERY_S:
            return self.forecast
        self.forecast_at = now
        pods_now = self.rt.pod_store.pods

        def pod_labels(key: str) -> Mapping[str, str] | None:
            rec = pods_now.get(key)
            return rec.labels if rec is not None else None

        crons, pending = self.rt.demand_store.sources_for(
            self.name, self.rt.policy_store.ordered, self.rt.namespace_store.get, pod_labels
        )
        horizon = max(FORECAST_HORIZON_S, policy.spec.preparation.lead_time_s)
        default = policy.spec.pacing.pod_startup_memory_bytes
        self.forecast = forecasting.forecast(crons, pending, now, horizon, default)
        next_burst = self.forecast.next()
        status: dict[str, Any] = {}
        if next_burst is not None:
            status.update(
                next=f"{times.rfc3339(next_burst.at)} {next_burst.source}: {next_burst.pods} pods, "
                f"{next_burst.memory_bytes / 2**30:.1f} GiB",
                nextAt=times.rfc3339(next_burst.at),
                nextSource=next_burst.source,
                nextPods=next_burst.pods,
                nextMemoryBytes=next_burst.memory_bytes,
            )
        if self.forecast.errors:
            status["errors"] = [f"{src}: {why}" for src, why in self.forecast.errors][:20]
        self.forecast_status = status
        for burst_id, at in list(self.prepared.items()):
            if now - at > 2 * FORECAST_HORIZON_S:
                del self.prepared[burst_id]
        return self.forecast

    def _prepare_ahead(
        self, policy: policy_api.BurstPolicy, views: list[pacing.NodeView], now: float
    ) -> None:
        """Ask the nodes a forecast burst will use to prepare ``leadTime`` before it lands."""
        fc = self._forecast(policy, now)
        prep = policy.spec.preparation
        if prep.lead_time_s <= 0 or not prep.enabled:
            return
        due = [
            b
            for b in forecasting.due(fc.bursts, prep.lead_time_s, now)
            if b.id not in self.prepared
        ]
        if not due:
            return
        asks = forecasting.ahead(
            due,
            views,
            prep,
            {node: a.at for node, a in self.asked.items()},
            now,
            last_wanted={node: a.bytes_wanted for node, a in self.asked.items()},
        )
        for burst in due:
            self.prepared[burst.id] = now
        for item in asks:
            ask, burst = item.ask, item.burst
            asked = requesting.Asked(f"{self.name}-ahead-{int(now * 1000)}", now, ask.bytes_wanted)
            self.asked[ask.node] = asked
            self.answers.pop(ask.node, None)
            lands = (
                f"lands at {times.rfc3339(burst.at)}"
                if burst.scheduled
                else "may be let go any moment"
            )
            why = (
                f"{burst.source} {lands}: {burst.pods} pods, {burst.memory_bytes} B over "
                f"{item.nodes} nodes; share {ask.share_bytes} B, headroom {ask.headroom_bytes} B "
                f"(leadTime {prep.lead_time_s:g}s)"
            )
            request = preparation.PrepareRequest(
                id=asked.id,
                bytes_wanted=ask.bytes_wanted,
                requested_at=now,
                policy=self.name,
                reason=why,
            )
            self._spawn(self._write_ahead(ask.node, request, why))
        if asks:
            last = asks[-1].burst
            total = sum(a.ask.bytes_wanted for a in asks if a.burst == last)
            count = sum(1 for a in asks if a.burst == last)
            self.prepared_status = dict(
                prepared=f"{count} nodes, {total / 2**30:.1f} GiB for {last.id}",
                preparedNodes=count,
                preparedBytes=total,
            )

    async def _write_ahead(self, node: str, req: preparation.PrepareRequest, why: str) -> None:
        try:
            await nodeviews.write_prepare_request(self.rt.api, node, req)
            metrics.API_WRITES.labels("prepare").inc()
            metrics.PREPARE_REQUESTS.labels(self.name).inc()
        except apiclient.ApiError as exc:
            log.warning("could not write prepare request on %s: %s", node, exc)
            return
        await events.emit(
            self.rt.api,
            kind="Node",
            name=node,
            reason="PreparedAhead",
            message=f"asked to free {req.bytes_wanted} B for policy {self.name}: {why}"[:1000],
        )
        metrics.API_WRITES.labels("event").inc()

    def _shadow(
        self, policy: policy_api.BurstPolicy, views: list[pacing.NodeView], now: float
    ) -> None:
        rules = policy.spec.pacing
        if self.bucket is None:
            self.bucket = pacing.full_bucket(rules.release_per_second, rules.burst, now)
        queue = self.rt.shadow_queues.setdefault(self.name, {})
        entered = self.rt.shadow_entered.pop(self.name, 0)
        decided = shadow.step(queue.values(), views, rules, bucket=self.bucket, now=now)
        self.bucket = decided.plan.bucket
        for d in decided.delays:
            queue.pop(d.pod, None)
            if d.seconds > self.rt.options.tick_s:
                metrics.SHADOW_DELAYED.labels(self.name).inc()
                metrics.SHADOW_DELAY.labels(self.name).observe(d.seconds)
        self.would_have = shadow.record(
            self.would_have, entered=entered, delays=decided.delays, tick_s=self.rt.options.tick_s
        )
        self.rt.shadow_results[self.name] = self.would_have

    # -- status ------------------------------------------------------------------------------

    def _node_memory(self, policy: policy_api.BurstPolicy) -> dict[str, int | None]:
        nodes = self.rt.node_store.nodes
        mine, _ = self._owned_nodes(policy)
        return {n: nodes[n].memory_bytes for n in mine if n in nodes}

    def _ready(
        self, policy: policy_api.BurstPolicy, conflicts: selection.Conflicts
    ) -> dict[str, Any]:
        if not policy.valid:
            status, reason = "False", "InvalidSpec"
            message = "; ".join(str(e) for e in policy.errors)[:1000]
        elif (msg := conflicts.message(policy.name)) is not None:
            status, reason, message = "False", "Conflict", msg
        elif refused := safety.refusals(
            policy.spec, tick_s=self.rt.options.tick_s, node_memory=self._node_memory(policy)
        ):
            status, reason = "False", refused[0].reason
            message = "; ".join(r.message for r in refused)[:1000]
        else:
            status, reason = "True", "Pacing" if policy.spec.enforcing else "DryRun"
            message = (
                "gating, pacing and steering"
                if policy.spec.enforcing
                else "recording what it would have done; changes nothing"
            )
        old = self.ready_condition
        changed = old is None or (old["status"], old["reason"], old["message"]) != (
            status,
            reason,
            message,
        )
        self.ready_condition = {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": policy.generation,
            "lastTransitionTime": times.rfc3339(time.time())
            if changed or old is None
            else old["lastTransitionTime"],
        }
        return self.ready_condition

    async def _report(
        self,
        policy: policy_api.BurstPolicy,
        now: float,
        *,
        nodes: list[pacing.NodeView],
        conflicts_nodes: int,
    ) -> None:
        gated = len(self.gated)
        metrics.GATED_PODS.labels(self.name).set(gated)
        if now - self.last_status_at < self.rt.options.status_interval_s:
            return
        conflicts = selection.Conflicts(
            pods={self.name: self.rt.pod_conflicts.get(self.name, 0)},
            nodes={self.name: conflicts_nodes},
        )
        previous_ready = (self.ready_condition or {}).get("status")
        ready = self._ready(policy, conflicts)
        status: dict[str, Any] = {
            "observedGeneration": policy.generation,
            "gatedPods": gated,
            "releasedTotal": self.released_total,
            "overdueReleasedTotal": self.overdue_total,
            "nodes": {k: self.node_counts.get(k, 0) for k in ("open", "closed", "stale", "total")},
            "fallback": self.fallback,
            "conditions": [ready],
        }
        if not policy.spec.enforcing:
            status["wouldHave"] = self.would_have.as_status()
        # None removes a forecast that has passed (the status is merge-patched).
        status["forecast"] = {**self.forecast_status, **self.prepared_status} or None
        if status == self.last_status:
            return
        self.last_status_at = now
        try:
            await policies.patch_status(self.rt.api, self.name, status)
            metrics.API_WRITES.labels("status").inc()
            self.last_status = status
        except apiclient.ApiError as exc:
            log.warning("could not write status of %s: %s", self.name, exc)
            return
        if ready["status"] != previous_ready:
            await self._policy_event(
                policy,
                f"Ready{ready['status']}",
                f"{ready['reason']}: {ready['message']}",
                warning=ready["status"] != "True",
            )
        if (
            not policy.spec.enforcing
            and now - self.last_event_at > 60.0
            and self.would_have.delayed_pods
        ):
            self.last_event_at = now
            w = self.would_have
            await self._policy_event(
                policy,
                "WouldHaveDelayed",
                f"would have delayed {w.delayed_pods} of {w.gated_pods} pods "
                f"(max {w.max_delay_s:.1f}s) and closed nodes {w.closed_nodes} times",
            )

    async def _policy_event(
        self, policy: policy_api.BurstPolicy, reason: str, message: str, *, warning: bool = False
    ) -> None:
        await events.emit(
            self.rt.api,
            kind=names.POLICY_KIND,
            api_version=f"{names.GROUP}/{names.VERSION}",
            name=policy.name,
            uid=policy.uid,
            reason=reason,
            message=message,
            warning=warning,
        )
        metrics.API_WRITES.labels("event").inc()

    async def close(self) -> None:
        """Let in-flight writes finish (they are short)."""
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)

    def abandon(self) -> None:
        """Leadership ended: cancel the writes not yet sent (no second writer)."""
        for task in list(self.tasks):
            task.cancel()


class Janitor:
    """Releases orphaned gates and stale intake labels, reports unbound pins; leader only."""

    def __init__(self, rt: runtime_.Runtime) -> None:
        self.rt = rt
        self.label_removals: set[str] = set()
        self.unbound_since: dict[str, float] = {}
        """Pinned, released pods not yet bound: when the janitor first saw each so."""
        self.reported: set[str] = set()
        self.pin_metrics: set[str] = set()
        """Policies whose pinned-unbound gauge was set last sweep (zeroed when they clear)."""

    def unbound_pins(self, now: float) -> list[tuple[pods.PodRecord, float]]:
        """Pinned pods unbound longer than their policy's maxGateSeconds, newly so.

        A pin is only made to an open node with budget, and the pod stays bindable there
        when the node later closes. What can still hold it is the scheduler: the node was
        deleted, tainted, or short of allocatable resources, which burstguard does not
        budget. The pod's affinity cannot change any more, and it holds one of its node's
        start slots, so it is reported (once per pod: Event, metric, log) for a person or
        its controller to recreate. Deleting it here would count as a failure against a
        Job's backoffLimit, so the janitor does not.
        """
        policies = {p.name: p for p in self.rt.policy_store.ordered}
        waiting: set[str] = set()
        late: list[tuple[pods.PodRecord, float]] = []
        per_policy: collections.Counter[str] = collections.Counter()
        for entry in list(self.rt.pod_store.ledger.pinned_unbound()):
            rec = self.rt.pod_store.pods.get(entry.key)
            if rec is None or entry.policy is None:
                continue
            policy = policies.get(entry.policy)
            limit = (
                policy.spec.pacing.max_gate_seconds
                if policy is not None
                else policy_api.Pacing().max_gate_seconds
            )
            waiting.add(entry.key)
            since = self.unbound_since.setdefault(entry.key, now)
            if now - since <= limit:
                continue
            per_policy[entry.policy] += 1
            if entry.key not in self.reported:
                self.reported.add(entry.key)
                late.append((rec, now - since))
        for key in list(self.unbound_since):
            if key not in waiting:
                del self.unbound_since[key]
                self.reported.discard(key)
        for policy_name in self.pin_metrics | set(per_policy):
            metrics.PINNED_UNBOUND.labels(policy_name).set(per_policy.get(policy_name, 0))
        self.pin_metrics = set(per_policy)
        return late

    async def _report_unbound(self, rec: pods.PodRecord, waited: float) -> None:
        node = self.rt.node_store.nodes.get(rec.pinned or "")
        state = "gone" if node is None else f"intake {node.intake or 'unlabelled'}"
        message = (
            f"released and pinned to node {rec.pinned} ({state}), unbound for {waited:.0f}s; "
            "see the PodScheduled condition for the scheduler's reason. The pin cannot be "
            "lifted: delete the pod to have its controller create it again."
        )
        log.warning("pod %s: %s", rec.key, message)
        await pod_event(self.rt.api, rec, reason="PinnedUnbound", message=message, warning=True)

    async def sweep(self) -> int:
        """One pass; returns how many gates it released."""
        released = 0
        now = time.time()
        self.rt.settle_releases(now, PENDING_RELEASE_TIMEOUT_S, STARTED_MEMORY_S)
        book = self.rt.pod_store.ledger
        for stage, count in book.counts().items():
            metrics.LEDGER_PODS.labels(stage).set(count)
        orphans: list[tuple[str, pods.PodRecord, str]] = []
        for policy_name, table in list(self.rt.pod_store.gated.items()):
            for rec in list(table.values()):
                why = self.rt.refusal(rec)
                if why is not None and not book.assumed(rec.key):
                    book.release(
                        rec.key, node=None, memory_bytes=rec.memory_bytes, policy=None, now=now
                    )
                    orphans.append((policy_name, rec, why))

        async def free(policy_name: str, rec: pods.PodRecord, why: str) -> int:
            try:
                result = await self.rt.send_release(rec)
            except apiclient.ApiError as exc:
                log.warning("release of orphaned %s failed: %s", rec.key, exc)
                return 0
            if result != "released":
                return 0
            selected = rec.policy is not None and any(
                p.name == rec.policy and p.spec.enforcing for p in self.rt.policy_store.ordered
            )
            # The policy exists and enforces, so the pod was never its to pace: it gated itself,
            # or its labels or namespace changed, or the namespace is excluded.
            reason = "not-selected" if selected else "policy-gone"
            metrics.RELEASES.labels(policy_name or "none", reason).inc()
            log.info("released %s: %s", rec.key, why)
            await pod_event(
                self.rt.api,
                rec,
                reason="ReleasedNotSelected" if selected else "ReleasedPolicyGone",
                message=f"{why}; gate removed without pacing",
                warning=True,
            )
            return 1

        released = sum(await asyncio.gather(*(free(p, r, w) for p, r, w in orphans)))
        for rec, waited in self.unbound_pins(now):
            await self._report_unbound(rec, waited)
        ordered = self.rt.policy_store.ordered
        for node in list(self.rt.node_store.nodes.values()):
            if node.intake is None or node.name in self.label_removals:
                continue
            owner, _ = selection.node_owner(ordered, node.labels)
            if owner is not None and owner.spec.enforcing:
                continue
            self.label_removals.add(node.name)
            try:
                await nodeviews.set_intake(self.rt.api, node.name, None)
                metrics.API_WRITES.labels("label").inc()
            except apiclient.ApiError as exc:
                log.warning("could not remove intake label from %s: %s", node.name, exc)
            finally:
                self.label_removals.discard(node.name)
        return released

    async def run(self, interval_s: float = 1.0) -> None:
        """Sweep forever (cancel to stop)."""
        while True:
            try:
                if self.rt.leading():
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("janitor sweep failed: %s", exc)
            await asyncio.sleep(interval_s)
