"""Admission: the JSON patch that gates a new pod, as a pure function of (pod, policies).

Scheduling gates can only be added when a pod is created, so the webhook is the one chance
to pace a pod. For a pod an Enforce policy selects it adds the gate ``burstguard.io/paced``
and an annotation naming the policy. Applying the patch twice changes nothing the second time
(reinvocation-safe).

Node steering depends on the policy's ``pacing.pinToNode``:

- pinning (the default): the webhook adds no affinity. The pacer picks a node for each pod
  and adds ``metadata.name In [node]`` in the release patch. An intake requirement added at
  creation would sit in the same required term as the pin, and a pod's affinity cannot change
  once its gates are gone: a pod whose node closed between release and binding would wait
  until that node reopened, behind no gate that ``maxGateSeconds`` could lift (measured: 28
  of 600 pods in the demo). The pacer only pins to open nodes with budget, so the intake term
  adds nothing a pinned pod needs.
- not pinning: the webhook adds the required expression ``burstguard.io/intake NotIn
  [closed]`` to every non-empty required term (terms are ORed, and a term without it would let
  the pod onto closed nodes), or a new term when there is none. Nodes without the label match
  ``NotIn``, so unlabeled nodes stay open.

:func:`require_ops` builds both the intake and the pin additions from an
:class:`AffinityShape`, because the release patch is made from the pacer's compact pod record,
not from the pod object. Pods that name a node (``spec.nodeName``: the apiserver rejects gates
on them), DaemonSet pods and mirror pods are never gated. Nothing here does I/O: the webhook
server only decodes, calls :func:`review`, and encodes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from burstguard.api import names
from burstguard.api import policy as policy_api
from burstguard.core import selection

MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"
NAMESPACE_NAME_LABEL: Final = selection.NAMESPACE_NAME_LABEL

INTAKE_EXPRESSION: Final = {
    "key": names.INTAKE_LABEL,
    "operator": "NotIn",
    "values": [names.INTAKE_CLOSED],
}

Op = dict[str, Any]


def _escape(segment: str) -> str:
    """JSON pointer escaping (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return segment.replace("~", "~0").replace("/", "~1")


def other_gates(gate_names: Iterable[str]) -> tuple[str, ...]:
    """The scheduling gates on a pod that are not burstguard's, in order."""
    return tuple(g for g in gate_names if g != names.SCHEDULING_GATE)


def paceable(gate_names: Iterable[str]) -> bool:
    """True when burstguard's gate is the only one left on the pod (DESIGN §7).

    A pod another controller still holds (Kueue's ``kueue.x-k8s.io/admission``, a workflow
    engine's gate) cannot be scheduled whatever burstguard does: releasing and pinning it
    would charge a node's budget for a start that is not coming, on a node chosen long
    before the other gate lifts. Such a pod is neither queued nor counted in flight.
    """
    gates = tuple(gate_names)
    return names.SCHEDULING_GATE in gates and not other_gates(gates)


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


REQUIRED_PATH: Final = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution"


@dataclass(frozen=True)
class AffinityShape:
    """How much of a pod's required node affinity exists: enough to extend it by JSON patch."""

    missing: str = ""
    """The first absent level (``affinity``, ``nodeAffinity``, ``required``, ``terms``), or ""."""
    terms: tuple[tuple[bool, bool], ...] = ()
    """Per existing term: (has matchExpressions, has matchFields)."""


def affinity_shape(spec: Mapping[str, Any]) -> AffinityShape:
    """Read the shape of ``spec.affinity.nodeAffinity.required...`` from a pod spec."""
    affinity = spec.get("affinity")
    if not affinity:
        return AffinityShape("affinity")
    node_affinity = affinity.get("nodeAffinity")
    if not node_affinity:
        return AffinityShape("nodeAffinity")
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return AffinityShape("required")
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return AffinityShape("terms")
    return AffinityShape(
        "", tuple((bool(t.get("matchExpressions")), bool(t.get("matchFields"))) for t in terms)
    )


def require_ops(
    shape: AffinityShape,
    requirement: Mapping[str, Any],
    *,
    field: bool = False,
    skip: frozenset[int] = frozenset(),
) -> list[Op]:
    """Ops that AND ``requirement`` into every required term (or create the one term).

    ``field`` puts it under ``matchFields`` (``metadata.name``) instead of
    ``matchExpressions``. Empty terms match no node and stay empty: adding to them would
    widen the pod's placement (and the apiserver refuses it for a gated pod). Terms in
    ``skip`` already carry the requirement.
    """
    kind = "matchFields" if field else "matchExpressions"
    term = {kind: [dict(requirement)]}
    if shape.missing == "affinity":
        value: Any = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }
        return [{"op": "add", "path": "/spec/affinity", "value": value}]
    if shape.missing == "nodeAffinity":
        value = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        return [{"op": "add", "path": "/spec/affinity/nodeAffinity", "value": value}]
    if shape.missing == "required":
        return [{"op": "add", "path": REQUIRED_PATH, "value": {"nodeSelectorTerms": [term]}}]
    if shape.missing == "terms":
        return [{"op": "add", "path": f"{REQUIRED_PATH}/nodeSelectorTerms", "value": [term]}]
    ops: list[Op] = []
    for i, (has_expressions, has_fields) in enumerate(shape.terms):
        if i in skip or not (has_expressions or has_fields):
            continue
        path = f"{REQUIRED_PATH}/nodeSelectorTerms/{i}/{kind}"
        if has_fields if field else has_expressions:
            ops.append({"op": "add", "path": f"{path}/-", "value": dict(requirement)})
        else:
            ops.append({"op": "add", "path": path, "value": [dict(requirement)]})
    return ops


def _has_intake_expression(term: Mapping[str, Any]) -> bool:
    for expr in term.get("matchExpressions") or []:
        if (
            expr.get("key") == names.INTAKE_LABEL
            and expr.get("operator") == "NotIn"
            and names.INTAKE_CLOSED in (expr.get("values") or [])
        ):
            return True
    return False


def _intake_ops(spec: Mapping[str, Any]) -> list[Op]:
    shape = affinity_shape(spec)
    terms = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    done = frozenset(i for i, t in enumerate(terms) if _has_intake_expression(t))
    return require_ops(shape, INTAKE_EXPRESSION, skip=done)


def gate_patch(pod: Mapping[str, Any], policy_name: str, *, steer: bool = False) -> list[Op]:
    """JSON patch ops that gate ``pod`` for ``policy_name``; empty when already done.

    ``steer`` adds the intake requirement (policies that do not pin pods to nodes).
    """
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    ops: list[Op] = []
    gates = spec.get("schedulingGates")
    gate = {"name": names.SCHEDULING_GATE}
    if not gates:
        ops.append({"op": "add", "path": "/spec/schedulingGates", "value": [gate]})
    elif not any(g.get("name") == names.SCHEDULING_GATE for g in gates):
        ops.append({"op": "add", "path": "/spec/schedulingGates/-", "value": gate})
    if steer:
        ops += _intake_ops(spec)
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
    owner, _ = selection.pod_policy(ordered_policies, namespace, namespace_labels, labels)
    if owner is None:
        return Decision(None, reason="no policy selects the pod")
    if not owner.spec.enforcing:
        return Decision(None, reason=f"policy {owner.name} is DryRun")
    steer = not owner.spec.pacing.pin_to_node
    return Decision(owner.name, tuple(gate_patch(pod, owner.name, steer=steer)), reason="gated")


def review(
    body: Mapping[str, Any],
    namespace_labels: Callable[[str], Mapping[str, str]],
    ordered_policies: Sequence[policy_api.BurstPolicy],
    excluded_namespaces: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], Decision]:
    """Answer an AdmissionReview (admission.k8s.io/v1); always allows, maybe with a patch.

    The answer is well-formed whatever the body holds: a request or kind of the wrong type
    reads as "not a pod CREATE", a uid that is not a string as empty, and the apiVersion is
    the one version the webhook configuration offers (found by fuzzing: echoing the body's
    apiVersion answered ``""`` to a body that said so).
    """
    raw_request = body.get("request") if isinstance(body, Mapping) else None
    request: Mapping[str, Any] = raw_request if isinstance(raw_request, Mapping) else {}
    uid = request_uid(body)
    decision = Decision(None, reason="not a pod CREATE")
    pod = request.get("object")
    kind = request.get("kind")
    if (
        request.get("operation") == "CREATE"
        and isinstance(kind, Mapping)
        and kind.get("kind") == "Pod"
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
        "apiVersion": REVIEW_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    }, decision


REVIEW_VERSION = "admission.k8s.io/v1"


def request_uid(body: Any) -> str:
    """The review's request uid, or "" when the body has none of the right type."""
    request = body.get("request") if isinstance(body, Mapping) else None
    uid = request.get("uid") if isinstance(request, Mapping) else None
    return uid if isinstance(uid, str) else ""
