"""Admission: the JSON patch that gates a new pod, as a pure function of (pod, policies).

Scheduling gates can only be added when a pod is created, so the webhook is the one chance
to pace a pod. For a pod an Enforce policy selects it adds the gate ``burstguard.io/paced``,
the required node-affinity expression ``burstguard.io/intake NotIn [closed]`` (appended to
every existing required term, because terms are ORed and a term without it would let the
pod onto closed nodes; or a new term when there is none; nodes without the label match
``NotIn``, so unlabeled nodes stay open) and an annotation naming the policy. Applying the
patch twice changes nothing the second time (reinvocation-safe).

Pods that name a node (``spec.nodeName``: the apiserver rejects gates on them), DaemonSet
pods and mirror pods are never gated. Exemptions and the patch are computed here, with no
I/O, so the webhook server only decodes, calls :func:`review`, and encodes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from burstguard.api import names
from burstguard.api import policy as policy_api
from burstguard.core import selection

MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"

INTAKE_EXPRESSION: Final = {
    "key": names.INTAKE_LABEL,
    "operator": "NotIn",
    "values": [names.INTAKE_CLOSED],
}

Op = dict[str, Any]


def _escape(segment: str) -> str:
    """JSON pointer escaping (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return segment.replace("~", "~0").replace("/", "~1")


def exemption(pod: Mapping[str, Any]) -> str | None:
    """Why a pod must never be gated, or None."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    if spec.get("nodeName"):
        return "names a node (spec.nodeName)"
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return "mirror pod"
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "DaemonSet" and owner.get("controller"):
            return "DaemonSet pod"
    return None


def _has_intake_expression(term: Mapping[str, Any]) -> bool:
    for expr in term.get("matchExpressions") or []:
        if (
            expr.get("key") == names.INTAKE_LABEL
            and expr.get("operator") == "NotIn"
            and names.INTAKE_CLOSED in (expr.get("values") or [])
        ):
            return True
    return False


def _affinity_ops(spec: Mapping[str, Any]) -> list[Op]:
    term = {"matchExpressions": [dict(INTAKE_EXPRESSION)]}
    required = {"nodeSelectorTerms": [term]}
    affinity = spec.get("affinity")
    if not affinity:
        return [
            {
                "op": "add",
                "path": "/spec/affinity",
                "value": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
                },
            }
        ]
    node_affinity = affinity.get("nodeAffinity")
    if not node_affinity:
        return [
            {
                "op": "add",
                "path": "/spec/affinity/nodeAffinity",
                "value": {"requiredDuringSchedulingIgnoredDuringExecution": required},
            }
        ]
    base = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution"
    req = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not req:
        return [{"op": "add", "path": base, "value": required}]
    terms = req.get("nodeSelectorTerms") or []
    if not terms:
        return [{"op": "add", "path": f"{base}/nodeSelectorTerms", "value": [term]}]
    ops: list[Op] = []
    for i, existing in enumerate(terms):
        if _has_intake_expression(existing):
            continue
        path = f"{base}/nodeSelectorTerms/{i}/matchExpressions"
        if existing.get("matchExpressions"):
            ops.append({"op": "add", "path": f"{path}/-", "value": dict(INTAKE_EXPRESSION)})
        else:
            ops.append({"op": "add", "path": path, "value": [dict(INTAKE_EXPRESSION)]})
    return ops


def gate_patch(pod: Mapping[str, Any], policy_name: str) -> list[Op]:
    """JSON patch ops that gate ``pod`` for ``policy_name``; empty when already done."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    ops: list[Op] = []
    gates = spec.get("schedulingGates")
    gate = {"name": names.SCHEDULING_GATE}
    if not gates:
        ops.append({"op": "add", "path": "/spec/schedulingGates", "value": [gate]})
    elif not any(g.get("name") == names.SCHEDULING_GATE for g in gates):
        ops.append({"op": "add", "path": "/spec/schedulingGates/-", "value": gate})
    ops += _affinity_ops(spec)
    annotations = meta.get("annotations")
    if not annotations:
        ops.append(
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {names.POLICY_ANNOTATION: policy_name},
            }
        )
    elif annotations.get(names.POLICY_ANNOTATION) != policy_name:
        ops.append(
            {
                "op": "add",
                "path": f"/metadata/annotations/{_escape(names.POLICY_ANNOTATION)}",
                "value": policy_name,
            }
        )
    return ops


@dataclass(frozen=True)
class Decision:
    """What the webhook decided for one pod."""

    policy: str | None
    """Name of the Enforce policy that gated the pod, or None."""
    ops: tuple[Op, ...] = ()
    """The JSON patch returned to the apiserver."""
    reason: str = ""
    """Why the pod was or was not gated (for logs and metrics)."""
    dry_run: bool = False
    """The request was a dry run: nothing is persisted, so nothing is counted."""


def decide(
    pod: Mapping[str, Any],
    namespace: str,
    namespace_labels: Mapping[str, str],
    ordered_policies: Sequence[policy_api.BurstPolicy],
    excluded_namespaces: frozenset[str] = frozenset(),
) -> Decision:
    """Gate or not; ``ordered_policies`` from :func:`selection.by_seniority` (oldest wins)."""
    if namespace in excluded_namespaces:
        return Decision(None, reason="namespace excluded")
    why = exemption(pod)
    if why:
        return Decision(None, reason=why)
    labels = (pod.get("metadata") or {}).get("labels") or {}
    ns_labels = {NAMESPACE_NAME_LABEL: namespace, **namespace_labels}
    owner, _ = selection.pod_owner(ordered_policies, ns_labels, labels)
    if owner is None:
        return Decision(None, reason="no policy selects the pod")
    if not owner.spec.enforcing:
        return Decision(None, reason=f"policy {owner.name} is DryRun")
    return Decision(owner.name, tuple(gate_patch(pod, owner.name)), reason="gated")


def review(
    body: Mapping[str, Any],
    namespace_labels: Callable[[str], Mapping[str, str]],
    ordered_policies: Sequence[policy_api.BurstPolicy],
    excluded_namespaces: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], Decision]:
    """Answer an AdmissionReview (admission.k8s.io/v1); always allows, maybe with a patch."""
    request = body.get("request") or {}
    uid = request.get("uid", "")
    decision = Decision(None, reason="not a pod CREATE")
    pod = request.get("object")
    if (
        request.get("operation") == "CREATE"
        and (request.get("kind") or {}).get("kind") == "Pod"
        and isinstance(pod, Mapping)
        and not request.get("subResource")
    ):
        namespace = str(
            request.get("namespace") or (pod.get("metadata") or {}).get("namespace", "")
        )
        decision = decide(
            pod, namespace, namespace_labels(namespace), ordered_policies, excluded_namespaces
        )
    if request.get("dryRun"):
        decision = dataclasses.replace(decision, dry_run=True)
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if decision.ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(decision.ops)).encode()).decode()
    return {
        "apiVersion": body.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }, decision
