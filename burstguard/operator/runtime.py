"""The operator's shared state: options, the API connection, live stores and their informers.

One process-wide :class:`Runtime` is created at kopf start-up and handed to every handler
through kopf's memo. It owns the informers (pods, nodes, namespaces, policies: list+watch,
compact records, no kopf handler per object), the webhook server, and the metrics server.
The webhook works from these stores on every replica; the per-policy pacers, the janitor
and the label writer work only while this replica holds the leader Lease (``leading``), and
every gate release asks again right before its patch is sent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from burstguard.api import policy as policy_api
from burstguard.core import leadership, pacing, selection, shadow
from burstguard.exporter import operator_metrics as metrics
from burstguard.exporter import serving
from burstguard.k8s import (
    apiclient,
    demand,
    namespaces,
    nodeviews,
    pods,
    policies,
    watching,
    webhookconfig,
)
from burstguard.operator import admission, certificates
from burstguard.operator import leadership as election

log = logging.getLogger(__name__)

DEFAULT_EXCLUDED_NAMESPACES: Final = ("kube-system",)


@dataclass(frozen=True)
class Options:
    """How the operator runs (from ``burstguard operator`` flags)."""

    kubeconfig: str | None = None
    """Kubeconfig path; None: $KUBECONFIG or in-cluster."""
    webhook_host: str = "127.0.0.1"
    """Address the webhook listens on and, with ``register_webhook``, the URL host."""
    webhook_port: int = 9443
    """Webhook TLS port."""
    cert_dir: Path = Path("/tmp/burstguard-webhook")
    """Directory of ca.pem, tls.crt, tls.key (made when missing; reloaded when they change)."""
    webhook_client_ca: str | None = None
    """CA (PEM) whose client certificates the webhook requires (mTLS); None: any caller."""
    register_webhook: bool = False
    """Create/replace the MutatingWebhookConfiguration pointing at this process (dev/tests)."""
    webhook_timeout_s: int = webhookconfig.DEFAULT_TIMEOUT_S
    """Admission timeout written into the configuration, seconds."""
    excluded_namespaces: tuple[str, ...] = DEFAULT_EXCLUDED_NAMESPACES
    """Namespaces never gated (kube-system and the release namespace)."""
    namespaces: tuple[str, ...] = ()
    """Only pace pods in these namespaces; empty = all."""
    metrics_port: int | None = 8080
    """Prometheus port; None = no metrics server."""
    metrics_authorize: serving.Authorize | None = None
    """Who may read ``/metrics`` (a bearer-token review); None: anyone who reaches the port."""
    metrics_tls: serving.Tls | None = None
    """Serve ``/metrics`` over TLS with this certificate; None: plain HTTP."""
    tick_s: float = 0.1
    """Pacer tick, seconds."""
    status_interval_s: float = 2.0
    """Least time between two status writes of one policy, seconds."""
    release_concurrency: int = 32
    """Release patches in flight at once."""
    routine_release_events: bool = False
    """Post an Event for every routine release (costs one more write per pod)."""
    leader_elect: bool = True
    """Take part in the Lease election; False: this single process always leads."""
    lease_namespace: str = "default"
    """Namespace of the leader Lease (the chart's release namespace)."""
    lease_name: str = "burstguard-operator"
    identity: str = ""
    """This replica's holder identity (pod name); empty: hostname and pid."""
    lease_timing: leadership.Timing = field(default_factory=leadership.Timing)
    webhook_keepalive: bool = False
    """Keep connections from the apiserver open between reviews (see AdmissionServer)."""
    webhook_shared_port: bool = False
    """Let several replicas on one host listen on one webhook port (SO_REUSEPORT); the
    kernel spreads connections over them as a Service spreads them over pods."""


@dataclass
class Runtime:
    """Process-wide state shared by handlers."""

    options: Options
    api: apiclient.Api
    pod_store: pods.PodStore = field(default_factory=pods.PodStore)
    node_store: nodeviews.NodeStore = field(default_factory=nodeviews.NodeStore)
    namespace_store: namespaces.NamespaceStore = field(default_factory=namespaces.NamespaceStore)
    policy_store: policies.PolicyStore = field(default_factory=policies.PolicyStore)
    started_at: float = field(default_factory=time.time)
    shadow_queues: dict[str, dict[str, pacing.QueuedPod]] = field(default_factory=dict)
    """DryRun policy -> pods it would have gated and not yet released (virtual queue)."""
    shadow_entered: dict[str, int] = field(default_factory=dict)
    """DryRun policy -> pods that entered the virtual queue since the last tick."""
    pod_conflicts: dict[str, int] = field(default_factory=dict)
    """Policy -> new pods it selected but an older policy owned."""
    releasing: set[str] = field(default_factory=set)
    """Pods whose release patch is queued or in flight (their entry never times out)."""
    release_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    informers: list[watching.Informer] = field(default_factory=list)
    server: admission.AdmissionServer | None = None
    metrics_server: serving.Server | None = None
    elector: election.Elector | None = None
    shadow_results: dict[str, shadow.WouldHave] = field(default_factory=dict)
    refusals: dict[str, tuple[pods.PodRecord, int, int, str | None]] = field(default_factory=dict)
    """Pod -> (record, policy version, namespace version, :meth:`refusal`): recomputed only
    when the pod, a policy or a namespace changed (10k gated pods, ten ticks a second)."""

    def leading(self) -> bool:
        """Whether this replica may write (release, label, prepare, status) right now."""
        return self.elector is None or self.elector.leading()

    def _forget_releases(self) -> None:
        """A new term starts from the watch alone: another leader may have released since, so
        every release this replica assumed and the watch has not confirmed is forgotten."""
        self.pod_store.ledger.expire(time.time(), assumed_for_s=-1.0, started_for_s=math.inf)

    demand_store: demand.DemandStore = field(default_factory=demand.DemandStore)
    """CronJobs, suspended Jobs and Kueue Workloads: bursts announced before their pods."""

    def ordered_policies(self) -> list[policy_api.BurstPolicy]:
        """Valid policies, oldest first."""
        return self.policy_store.ordered

    def refusal(self, rec: pods.PodRecord) -> str | None:
        """Why the policy ``rec`` names must not pace it, or None (``selection.refusal``).

        The pacer and the janitor both ask here, so the pod a pacer skips is the pod the
        janitor releases.
        """
        versions = (self.policy_store.version, self.namespace_store.version)
        cached = self.refusals.get(rec.key)
        if cached is not None and cached[0] is rec and cached[1:3] == versions:
            return cached[3]
        answer = selection.refusal(
            rec.policy,
            self.policy_store.ordered,
            rec.namespace,
            self.namespace_store.get(rec.namespace),
            rec.labels,
            excluded_namespaces=frozenset(self.options.excluded_namespaces),
        )
        self.refusals[rec.key] = (rec, *versions, answer)
        return answer

    def paced_by(self, table: Mapping[str, pods.PodRecord]) -> dict[str, pods.PodRecord]:
        """The pods of a per-policy table (gated or in flight) the policy really selects."""
        return {k: r for k, r in table.items() if self.refusal(r) is None}

    def _on_new_pod(self, rec: pods.PodRecord) -> None:
        """First sight of a pod: shadow queues and pod-conflict counts."""
        if rec.gated or rec.node is not None:
            return
        if rec.created_at < self.started_at - 5.0:
            return  # existed before this operator: not a "new" creation it could have gated
        namespace = rec.namespace
        owner, losers = selection.pod_policy(
            self.policy_store.ordered,
            namespace,
            self.namespace_store.get(namespace),
            rec.labels,
            frozenset(self.options.excluded_namespaces),
        )
        for loser in losers:
            self.pod_conflicts[loser] = self.pod_conflicts.get(loser, 0) + 1
        if owner is None or owner.spec.enforcing:
            return
        self.shadow_queues.setdefault(owner.name, {})[rec.key] = pacing.QueuedPod(
            key=rec.key,
            created_at=rec.created_at,
            priority=rec.priority,
            cost_bytes=rec.memory_bytes,
        )
        self.shadow_entered[owner.name] = self.shadow_entered.get(owner.name, 0) + 1

    def settle_releases(self, now: float, timeout_s: float, started_for_s: float) -> None:
        """Forget assumed releases the watch has not confirmed within ``timeout_s`` of their
        patch (a lost patch is tried again; one still queued for a slot is kept) and starts
        every summary since shows (``started_for_s``); the ledger owns both."""
        self.pod_store.ledger.expire(
            now, assumed_for_s=timeout_s, started_for_s=started_for_s, keep=self.releasing
        )

    async def send_release(self, rec: pods.PodRecord, node: str | None = None) -> str:
        """Send one release patch when a slot is free (``pods.release``'s result).

        The pod's assumed release is stamped when the patch is written, so the timeout counts
        from the write, not from the wait for a slot: with 2000 releases queued behind 32
        slots, entries timed out in the queue and 3 % of pods were patched twice. On an
        error the release is forgotten (the pod is planned again) and the error raised.
        """
        self.releasing.add(rec.key)
        try:
            async with self.release_slots:
                if not self.leading():  # leadership ended while the patch waited for a slot
                    self.pod_store.ledger.forget(rec.key)
                    return "not-leader"
                result = await pods.release(self.api, rec, node)
        except BaseException:
            self.pod_store.ledger.forget(rec.key)
            raise
        finally:
            self.releasing.discard(rec.key)
        metrics.API_WRITES.labels("release").inc()
        if result == "ungated":
            metrics.DUPLICATE_RELEASES.inc()
            log.warning("duplicate release patch: %s had no gate left", rec.key)
        self.pod_store.ledger.patched(rec.key, time.time())
        if result in ("gone", "conflict"):
            self.pod_store.ledger.forget(rec.key)
        return result

    def _on_gone_pod(self, rec: pods.PodRecord) -> None:
        self.refusals.pop(rec.key, None)
        for queue in self.shadow_queues.values():
            queue.pop(rec.key, None)

    async def start(self) -> None:
        """Start informers, wait for their first list, then serve the webhook and metrics
        and take part in the election."""
        o = self.options
        self.release_slots = asyncio.Semaphore(self.options.release_concurrency)
        self.pod_store.on_new.append(self._on_new_pod)
        self.pod_store.on_gone.append(self._on_gone_pod)
        self.informers = [
            watching.Informer(self.api, namespaces.NAMESPACES_PATH, self.namespace_store),
            watching.Informer(self.api, policies.POLICIES_PATH, self.policy_store),
            watching.Informer(self.api, nodeviews.NODES_PATH, self.node_store),
        ]
        pod_paths = (
            [f"/api/v1/namespaces/{ns}/pods" for ns in self.options.namespaces]
            if self.options.namespaces
            else [pods.PODS_PATH]
        )
        # Policies and namespaces first: the shadow hook needs them when pods arrive.
        for informer in self.informers:
            self.tasks.append(asyncio.create_task(informer.run(), name=f"informer {informer.path}"))
        await asyncio.wait_for(
            asyncio.gather(*(i.synced.wait() for i in self.informers)), timeout=60
        )
        for path in pod_paths:
            informer = watching.Informer(
                self.api, path, self.pod_store, field_selector=pods.ACTIVE_PODS
            )
            self.informers.append(informer)
            self.tasks.append(asyncio.create_task(informer.run(), name=f"informer {path}"))
        await asyncio.wait_for(
            asyncio.gather(*(i.synced.wait() for i in self.informers)), timeout=120
        )
        for path, table in (
            (demand.CRONJOBS_PATH, self.demand_store.cronjobs),
            (demand.JOBS_PATH, self.demand_store.jobs),
        ):
            informer = watching.Informer(self.api, path, table)
            self.informers.append(informer)
            self.tasks.append(asyncio.create_task(informer.run(), name=f"informer {path}"))
        self.tasks.append(asyncio.create_task(self._watch_workloads(), name="kueue workloads"))
        # The first lists are in: move what they built out of the collector's sight, so a
        # full collection scans only new objects instead of every pod record (a pause that
        # stalls the webhook's thread too: the GIL is the process's).
        gc.freeze()
        await self._start_webhook()
        if self.options.metrics_port is not None:
            self.metrics_server = metrics.serve(
                self.options.metrics_port,
                authorize=self.options.metrics_authorize,
                tls=self.options.metrics_tls,
            )
        if o.leader_elect:
            # Only now: a replica leads only with synced stores to decide from.
            self.elector = election.Elector(
                api=self.api,
                namespace=o.lease_namespace,
                name=o.lease_name,
                identity=o.identity or f"{socket.gethostname()}-{os.getpid()}",
                timing=o.lease_timing,
            )
            self.elector.on_won.append(self._forget_releases)
            self.tasks.append(asyncio.create_task(self.elector.run(), name="election"))
        else:
            metrics.LEADER.set(1)
        log.info(
            "operator ready: %d pods, %d nodes, %d policies",
            len(self.pod_store.pods),
            len(self.node_store.nodes),
            len(self.policy_store.policies),
        )

    async def _watch_workloads(self, every_s: float = 10.0) -> None:
        """Watch Kueue's Workloads once its CRDs are served (they may be installed later)."""
        while True:
            try:
                if await demand.served(self.api, demand.KUEUE_GROUP_VERSION):
                    break
            except apiclient.ApiError as exc:
                log.warning("cannot tell whether Kueue is installed: %s", exc)
            await asyncio.sleep(every_s)
        log.info("Kueue's Workload API is served: forecasting Workloads pending admission")
        self.demand_store.kueue_served = True
        await watching.Informer(self.api, demand.WORKLOADS_PATH, self.demand_store.workloads).run()

    async def _start_webhook(self) -> None:
        o = self.options
        hosts = [o.webhook_host, "localhost"] if o.webhook_host != "localhost" else ["localhost"]
        files = certificates.ensure(o.cert_dir, hosts)
        self.server = admission.AdmissionServer(
            policies=self.ordered_policies,
            namespace_labels=self.namespace_store.get,
            excluded_namespaces=frozenset(o.excluded_namespaces),
            keepalive=o.webhook_keepalive,
        )
        await self.server.start(
            host=o.webhook_host,
            port=o.webhook_port,
            certfile=str(files.cert),
            keyfile=str(files.key),
            client_ca=o.webhook_client_ca,
            reuse_port=o.webhook_shared_port,
        )
        if o.register_webhook:
            body = webhookconfig.manifest(
                url=f"https://{o.webhook_host}:{o.webhook_port}{admission.MUTATE_PATH}",
                ca_pem=files.ca.read_bytes(),
                excluded_namespaces=o.excluded_namespaces,
                timeout_s=o.webhook_timeout_s,
            )
            await webhookconfig.ensure(self.api, body)
            log.info("registered MutatingWebhookConfiguration %s", webhookconfig.NAME)

    async def stop(self) -> None:
        """Hand the Lease back, stop serving and watching (the webhook configuration stays:
        it fails open, and the other replicas still serve it)."""
        if self.elector is not None:
            await self.elector.release()
        if self.server is not None:
            await self.server.stop()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.stop)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.api.close()
