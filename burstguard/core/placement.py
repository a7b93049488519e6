"""Placement feasibility: could this pod run on that node, by labels, fields and taints?

With ``pacing.pinToNode`` the pacer chooses the node for each pod it releases and adds a
required ``metadata.name In [node]`` field requirement to each of the pod's node-affinity
terms in the same patch that removes the gate (KEP-3838 allows tightening affinity while a
pod is gated). That makes ``maxStartingPerNode`` a guarantee rather than a hope: an ungated
pod left to the scheduler may land on a node that filled up between two label updates.
Pinning must never pick a node the pod could not use, so the pod's own constraints are
checked here: ``nodeSelector``, required node affinity (expressions on labels, fields on
``metadata.name``; terms ORed, requirements ANDed) and NoSchedule/NoExecute taints against
its tolerations. Resources are left to the scheduler (burstguard budgets memory headroom, not
allocatable). Pure functions over small frozen records built by the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from burstguard.api import policy as policy_api
from burstguard.core import selection


@dataclass(frozen=True)
class Term:
    """One required node-selector term (its requirements are ANDed)."""

    expressions: tuple[policy_api.Requirement, ...] = ()
    """Requirements on node labels."""
    fields: tuple[policy_api.Requirement, ...] = ()
    """Requirements on node fields (only ``metadata.name`` exists)."""


@dataclass(frozen=True)
class Toleration:
    """A pod toleration."""

    key: str = ""
    """Taint key ("" with Exists tolerates everything)."""
    operator: str = "Equal"
    """``Equal`` or ``Exists``."""
    value: str = ""
    """Taint value for ``Equal``."""
    effect: str = ""
    """Taint effect ("" matches every effect)."""


@dataclass(frozen=True)
class Taint:
    """A node taint."""

    key: str
    """Taint key."""
    value: str = ""
    """Taint value."""
    effect: str = "NoSchedule"
    """``NoSchedule``, ``PreferNoSchedule`` or ``NoExecute``."""


@dataclass(frozen=True)
class Constraints:
    """What a pod demands of its node."""

    node_selector: tuple[tuple[str, str], ...] = ()
    """spec.nodeSelector pairs."""
    terms: tuple[Term, ...] = ()
    """Required node-affinity terms (ORed); empty means any node."""
    tolerations: tuple[Toleration, ...] = ()
    """spec.tolerations."""


def _requirement(req: policy_api.Requirement, values: Mapping[str, str]) -> bool:
    if req.operator in ("Gt", "Lt"):
        if req.key not in values or len(req.values) != 1:
            return False
        try:
            have, want = int(values[req.key]), int(req.values[0])
        except ValueError:
            return False
        return have > want if req.operator == "Gt" else have < want
    sel = policy_api.LabelSelector(match_expressions=(req,))
    return selection.matches(sel, values)


def _term(term: Term, name: str, labels: Mapping[str, str]) -> bool:
    fields = {"metadata.name": name}
    return all(_requirement(r, labels) for r in term.expressions) and all(
        _requirement(r, fields) for r in term.fields
    )


def _tolerated(taint: Taint, tolerations: tuple[Toleration, ...]) -> bool:
    for t in tolerations:
        if t.effect and t.effect != taint.effect:
            continue
        if t.operator == "Exists" and (not t.key or t.key == taint.key):
            return True
        if t.operator in ("Equal", "") and t.key == taint.key and t.value == taint.value:
            return True
    return False


def feasible(
    constraints: Constraints, name: str, labels: Mapping[str, str], taints: tuple[Taint, ...]
) -> bool:
    """True when a pod with ``constraints`` may be placed on the node."""
    for key, value in constraints.node_selector:
        if labels.get(key) != value:
            return False
    if constraints.terms and not any(_term(t, name, labels) for t in constraints.terms):
        return False
    return all(
        taint.effect == "PreferNoSchedule" or _tolerated(taint, constraints.tolerations)
        for taint in taints
    )
