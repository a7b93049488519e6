"""Which policy owns a pod or a node: label selector matching and conflict resolution.

A pod or node can be selected by several policies; the design says the oldest wins
(creation time, then name), and the others report the conflict. Deciding this in one pure
place means the webhook, the pacer, the intake steering and the shadow mode can never
disagree about ownership. Invalid policies own nothing.

A pod's ``burstguard.io/policy`` annotation is only a cache of :func:`pod_policy`: any pod
may carry the gate and any annotation it likes, so the pacer and the janitor ask
:func:`refusal` whether the named policy really selects the pod before they budget, pin or
release it for that policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from burstguard.api import policy as policy_api

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
"""Label the apiserver sets on every namespace to its name; a namespaceSelector may use it."""


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


def pod_policy(
    ordered: Sequence[policy_api.BurstPolicy],
    namespace: str,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
    excluded_namespaces: frozenset[str] = frozenset(),
) -> tuple[policy_api.BurstPolicy | None, tuple[str, ...]]:
    """:func:`pod_owner` for a pod in ``namespace``; nothing owns a pod of an excluded one.

    The namespace's name label is added as the apiserver sets it, so a namespaceSelector on
    ``kubernetes.io/metadata.name`` matches a namespace the store has not seen yet.
    """
    if namespace in excluded_namespaces:
        return None, ()
    ns_labels = {NAMESPACE_NAME_LABEL: namespace, **namespace_labels}
    return pod_owner(ordered, ns_labels, pod_labels)


def refusal(
    policy_name: str | None,
    ordered: Sequence[policy_api.BurstPolicy],
    namespace: str,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
    *,
    excluded_namespaces: frozenset[str] = frozenset(),
) -> str | None:
    """Why the Enforce policy ``policy_name`` must not pace this gated pod, or None if it may.

    ``policy_name`` is what the pod's annotation says (None: no annotation). The answer is
    the webhook's own decision recomputed (:func:`pod_policy`), so a pod that put the gate and
    a policy's name on itself, in a namespace that policy does not select or that is
    excluded, is never budgeted, pinned or released by that policy.
    """
    if policy_name is None:
        return "it carries burstguard's gate without the webhook's policy annotation"
    if namespace in excluded_namespaces:
        return f"namespace {namespace} is excluded from gating"
    named = next((p for p in ordered if p.name == policy_name), None)
    if named is None:
        return f"policy {policy_name} is gone or invalid"
    if not named.spec.enforcing:
        return f"policy {policy_name} is DryRun"
    owner, _ = pod_policy(ordered, namespace, namespace_labels, pod_labels)
    if owner is None:
        return f"policy {policy_name} does not select it (no policy does)"
    if owner.name != policy_name:
        return f"policy {policy_name} does not select it (policy {owner.name} owns it)"
    return None


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
