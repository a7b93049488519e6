"""Which policy owns a pod or a node: label selector matching and conflict resolution.

A pod or node can be selected by several policies; the design says the oldest wins
(creation time, then name), and the others report the conflict. Deciding this in one pure
place means the webhook, the pacer, the intake steering and the shadow mode can never
disagree about ownership. Invalid policies own nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from burstguard.api import policy as policy_api


def matches(selector: policy_api.LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics; an empty selector matches everything."""
    for key, value in selector.match_labels:
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In":
            if not present or labels[req.key] not in req.values:
                return False
        elif req.operator == "NotIn":
            if present and labels[req.key] in req.values:
                return False
        elif req.operator == "Exists":
            if not present:
                return False
        elif req.operator == "DoesNotExist":
            if present:
                return False
        else:
            return False
    return True


def selects_pod(
    policy: policy_api.BurstPolicy,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
) -> bool:
    """True when ``policy`` selects a pod with these labels in a namespace with these labels."""
    pods = policy.spec.pods
    return matches(pods.namespace_selector, namespace_labels) and matches(
        pods.pod_selector, pod_labels
    )


def selects_node(policy: policy_api.BurstPolicy, node_labels: Mapping[str, str]) -> bool:
    """True when ``policy`` guards a node with these labels."""
    return matches(policy.spec.nodes.node_selector, node_labels)


def by_seniority(policies: Iterable[policy_api.BurstPolicy]) -> list[policy_api.BurstPolicy]:
    """Valid policies, oldest first (the order in which they win conflicts)."""
    return sorted((p for p in policies if p.valid), key=policy_api.seniority)


def pod_owner(
    ordered: Sequence[policy_api.BurstPolicy],
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
) -> tuple[policy_api.BurstPolicy | None, tuple[str, ...]]:
    """The winning policy for a pod and the names of the losers that also select it.

    ``ordered`` must come from :func:`by_seniority`.
    """
    hits = [p for p in ordered if selects_pod(p, namespace_labels, pod_labels)]
    if not hits:
        return None, ()
    return hits[0], tuple(p.name for p in hits[1:])


def node_owner(
    ordered: Sequence[policy_api.BurstPolicy], node_labels: Mapping[str, str]
) -> tuple[policy_api.BurstPolicy | None, tuple[str, ...]]:
    """The winning policy for a node and the names of the losers that also select it."""
    hits = [p for p in ordered if selects_node(p, node_labels)]
    if not hits:
        return None, ()
    return hits[0], tuple(p.name for p in hits[1:])


@dataclass(frozen=True)
class Conflicts:
    """Policies that lost an ownership conflict, with what they lost."""

    pods: Mapping[str, int] = field(default_factory=dict)
    """Policy name -> number of pods another (older) policy also selects."""
    nodes: Mapping[str, int] = field(default_factory=dict)
    """Policy name -> number of nodes another (older) policy also guards."""

    def message(self, name: str) -> str | None:
        """A Ready=False message for ``name``, or None when it lost nothing."""
        parts = []
        if self.pods.get(name):
            parts.append(f"{self.pods[name]} pods")
        if self.nodes.get(name):
            parts.append(f"{self.nodes[name]} nodes")
        if not parts:
            return None
        return f"{' and '.join(parts)} are also selected by an older policy, which wins"
