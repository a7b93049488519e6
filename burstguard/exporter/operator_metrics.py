"""The operator's Prometheus metrics, on a registry of their own.

Names come from ``exporter.names`` (one place for every burstguard metric). The operator
process serves this registry alone (``serve``), so agent metrics and operator metrics never
mix even when both run in one test process. Label sets are small and bounded: policy names,
a handful of reasons and states, and node names for the intake state.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from burstguard.exporter import names, serving

REGISTRY: Final = CollectorRegistry(auto_describe=True)

LEADER: Final = Gauge(
    names.OP_LEADER,
    "1 while this replica holds the leader Lease (runs the pacer, janitor and label writer).",
    registry=REGISTRY,
)
DUPLICATE_RELEASES: Final = Counter(
    names.OP_DUPLICATE_RELEASES,
    "Release patches that found the gate already removed (a second writer or a lost answer).",
    registry=REGISTRY,
)
GATED_PODS: Final = Gauge(
    names.OP_GATED_PODS,
    "Pods carrying burstguard's scheduling gate.",
    ["policy"],
    registry=REGISTRY,
)
RELEASES: Final = Counter(
    names.OP_RELEASES,
    "Gates removed, by reason (paced, overdue, startup-overdue, manual).",
    ["policy", "reason"],
    registry=REGISTRY,
)
GATE_WAIT: Final = Histogram(
    names.OP_GATE_WAIT_SECONDS,
    "Time from pod creation to gate removal, seconds.",
    ["policy"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
NODE_INTAKE: Final = Gauge(
    names.OP_NODE_INTAKE,
    "1 for the node's current intake state (open, closed, stale).",
    ["node", "state"],
    registry=REGISTRY,
)
POLICY_NODES: Final = Gauge(
    names.OP_POLICY_NODES, "Guarded nodes by intake state.", ["policy", "state"], registry=REGISTRY
)
PINNED_UNBOUND: Final = Gauge(
    names.OP_PINNED_UNBOUND_PODS,
    "Released pods pinned to a node and still unbound after maxGateSeconds.",
    ["policy"],
    registry=REGISTRY,
)
LEDGER_PODS: Final = Gauge(
    names.OP_LEDGER_PODS,
    "Pods in the ledger of starts by stage: released (not yet bound), bound (starting), "
    "started (after their node's last summary).",
    ["stage"],
    registry=REGISTRY,
)
SHADOW_DELAYED: Final = Counter(
    names.OP_SHADOW_DELAYED_PODS,
    "Pods a DryRun policy would have held at least one tick.",
    ["policy"],
    registry=REGISTRY,
)
SHADOW_DELAY: Final = Histogram(
    names.OP_SHADOW_DELAY_SECONDS,
    "How long a DryRun policy would have held a pod, seconds.",
    ["policy"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
SHADOW_CLOSURES: Final = Counter(
    names.OP_SHADOW_NODE_CLOSURES,
    "Node closures a DryRun policy would have made.",
    ["policy"],
    registry=REGISTRY,
)
WEBHOOK_REQUESTS: Final = Counter(
    names.OP_WEBHOOK_REQUESTS,
    "Admission requests answered, by result (gated, skipped, error).",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_DURATION: Final = Histogram(
    names.OP_WEBHOOK_DURATION_SECONDS,
    "Time to answer one admission request inside the operator, seconds.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)
API_WRITES: Final = Counter(
    names.OP_API_WRITES,
    "Writes to the API server, by kind (release, label, status, event, prepare).",
    ["kind"],
    registry=REGISTRY,
)
TICK_DURATION: Final = Histogram(
    names.OP_TICK_DURATION_SECONDS,
    "Time to decide and apply one pacer tick, seconds.",
    ["policy"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)
PREPARE_REQUESTS: Final = Counter(
    names.OP_PREPARE_REQUESTS,
    "Preparation requests written on nodes.",
    ["policy"],
    registry=REGISTRY,
)
PREPARE_ANSWERS: Final = Counter(
    names.OP_PREPARE_ANSWERS,
    "Preparation requests the agents answered, by answer (served, short, refused).",
    ["policy", "state"],
    registry=REGISTRY,
)


def _alive() -> tuple[bool, str]:
    return True, "serving"


def serve(
    port: int,
    addr: str = "0.0.0.0",
    authorize: serving.Authorize | None = None,
    tls: serving.Tls | None = None,
) -> serving.Server:
    """Serve the operator registry on ``addr:port`` (daemon threads), with the agent's
    server: ``/metrics`` optionally behind ``authorize`` and TLS, and ``/livez`` open. The
    operator's own probes stay on the webhook port, where its readiness is decided."""
    return serving.serve(REGISTRY, port, _alive, host=addr, authorize=authorize, tls=tls)
