"""Pods as the pacer sees them: compact records, a live store, and the release patch.

A watched pod is reduced at once to a :class:`PodRecord` (a few dozen bytes of fields the
decisions need) so 10k gated pods cost little memory; the full object is never kept. The
store keeps the gated pods per policy (the queue) and feeds every change of a pod's start
into the ledger of starts (``core.ledger``: confirmed releases, binds, starts, finishes),
which the pacer, janitor and metrics read; the store keeps no count of its own.

A pod is *starting* when it is bound to a node, not finished, and not all its containers
have started (running or terminated): every start costs memory whether burstguard paced it
or not. The watch excludes Succeeded and Failed pods (field selector), so finished pods
leave the store as the API server reports them gone.

:func:`release` is the one write per released pod: a JSON patch that tests burstguard's gate
at its index and removes it, so another controller's gate can never be removed by mistake.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from burstguard.api import names, units
from burstguard.api import policy as policy_api
from burstguard.core import gating, ledger, pacing, placement
from burstguard.k8s import apiclient

log = logging.getLogger(__name__)

PODS_PATH: Final = "/api/v1/pods"
ACTIVE_PODS: Final = "status.phase!=Succeeded,status.phase!=Failed"
"""Field selector of the pod watch: finished pods neither start nor wait."""


UNANNOTATED: Final = ""
"""Key in :attr:`PodStore.gated` of pods with burstguard's gate and no policy annotation."""

NO_CONSTRAINTS: Final = placement.Constraints()
"""Constraints of a pod that may go anywhere (shared, to keep records small)."""

NO_AFFINITY: Final = gating.AffinityShape("affinity")
"""Shape of a pod with no affinity at all."""

_shapes: dict[gating.AffinityShape, gating.AffinityShape] = {NO_AFFINITY: NO_AFFINITY}
"""Interned shapes: a burst of 10k pods from one template shares one record."""


def timestamp(text: Any) -> float:
    """RFC 3339 timestamp to Unix seconds (0 when absent)."""
    if not isinstance(text, str) or not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What decisions need to know about one pod."""

    key: str
    """``namespace/name``."""
    uid: str
    """metadata.uid."""
    created_at: float
    """Creation time, Unix seconds."""
    priority: int
    """spec.priority (0 when unset)."""
    labels: Mapping[str, str]
    """metadata.labels."""
    policy: str | None
    """The ``burstguard.io/policy`` annotation (set by the webhook on gated pods)."""
    gate_index: int | None
    """Index of burstguard's gate in spec.schedulingGates; None when not gated by it."""
    node: str | None
    """spec.nodeName once bound."""
    phase: str
    """status.phase."""
    starting: bool
    """Bound, not finished, and not every container started."""
    memory_bytes: int | None
    """Σ container memory requests, bytes; None when no container requests memory."""
    constraints: placement.Constraints = NO_CONSTRAINTS
    """The pod's own node constraints (selector, required affinity, tolerations)."""
    affinity: gating.AffinityShape = NO_AFFINITY
    """Shape of the required node affinity (what the pin patch must add)."""
    pinned: str | None = None
    """Node named by a single-value ``metadata.name In`` field requirement (a pin)."""
    queued: pacing.QueuedPod | None = None
    """The gated pod as the pacer queues it, built once: with 10k gated pods, building them
    every tick took a fifth of the operator's CPU. None while another controller's gate is
    still on the pod (``gating.paceable``): such a pod is not paced yet."""
    held_by: tuple[str, ...] = ()
    """Other controllers' scheduling gates still on the pod."""

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return self.key.partition("/")[0]

    @property
    def name(self) -> str:
        """The pod's name."""
        return self.key.partition("/")[2]

    @property
    def gated(self) -> bool:
        """True while burstguard's gate is on the pod."""
        return self.gate_index is not None


def _memory(spec: Mapping[str, Any]) -> int | None:
    total, seen = 0, False
    for c in spec.get("containers") or []:
        value = ((c.get("resources") or {}).get("requests") or {}).get("memory")
        if value is not None:
            try:
                total += units.quantity_bytes(value)
                seen = True
            except units.UnitError:
                continue
    return total if seen else None


def _all_started(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    statuses = status.get("containerStatuses") or []
    if len(statuses) < len(spec.get("containers") or []):
        return False
    for s in statuses:
        state = s.get("state") or {}
        if not (s.get("started") or "running" in state or "terminated" in state):
            return False
    return True


def _requirements(items: Any) -> tuple[policy_api.Requirement, ...]:
    return tuple(
        policy_api.Requirement(
            key=str(r.get("key", "")),
            operator=str(r.get("operator", "")),
            values=tuple(str(v) for v in r.get("values") or ()),
        )
        for r in items or ()
    )


def template_demand(spec: Mapping[str, Any]) -> tuple[int | None, placement.Constraints]:
    """Memory request and node constraints of a pod template's spec (for forecasts)."""
    return _memory(spec), _constraints(spec)[0]


def _constraints(
    spec: Mapping[str, Any],
) -> tuple[placement.Constraints, gating.AffinityShape, str | None]:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    raw_terms = required.get("nodeSelectorTerms") or []
    # The intake requirement is left out: the pacer knows node state itself (a closed node
    # has no room), and a pod must not look "unplaceable on guarded nodes" because of it.
    terms = tuple(
        placement.Term(
            expressions=tuple(
                r for r in _requirements(t.get("matchExpressions")) if r.key != names.INTAKE_LABEL
            ),
            fields=_requirements(t.get("matchFields")),
        )
        for t in raw_terms
    )
    pinned = None
    for term in terms:
        for f in term.fields:
            if f.key == "metadata.name" and f.operator == "In" and len(f.values) == 1:
                pinned = f.values[0]
    tolerations = tuple(
        placement.Toleration(
            key=str(t.get("key") or ""),
            operator=str(t.get("operator") or "Equal"),
            value=str(t.get("value") or ""),
            effect=str(t.get("effect") or ""),
        )
        for t in spec.get("tolerations") or ()
    )
    constraints = placement.Constraints(
        node_selector=tuple(
            sorted((str(k), str(v)) for k, v in (spec.get("nodeSelector") or {}).items())
        ),
        terms=terms,
        tolerations=tolerations,
    )
    shape = gating.affinity_shape(spec)
    return constraints, _shapes.setdefault(shape, shape), pinned


def compact(obj: Mapping[str, Any]) -> PodRecord:
    """Reduce a pod object to its record."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    gate_index = None
    gate_names = [str(g.get("name", "")) for g in spec.get("schedulingGates") or []]
    for i, gate_name in enumerate(gate_names):
        if gate_name == names.SCHEDULING_GATE:
            gate_index = i
            break
    held_by = gating.other_gates(gate_names)
    node = spec.get("nodeName") or None
    phase = str(status.get("phase") or "Pending")
    finished = phase in ("Succeeded", "Failed") or bool(meta.get("deletionTimestamp"))
    constraints, affinity, pinned = (
        _constraints(spec)
        if gate_index is not None or not node
        else (NO_CONSTRAINTS, NO_AFFINITY, None)
    )
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    created_at = timestamp(meta.get("creationTimestamp"))
    priority = int(spec.get("priority") or 0)
    memory = _memory(spec)
    return PodRecord(
        key=key,
        uid=str(meta.get("uid", "")),
        created_at=created_at,
        priority=priority,
        labels=dict(meta.get("labels") or {}),
        policy=(meta.get("annotations") or {}).get(names.POLICY_ANNOTATION),
        gate_index=gate_index,
        node=node,
        phase=phase,
        starting=bool(node) and not finished and not _all_started(spec, status),
        memory_bytes=memory,
        constraints=constraints,
        affinity=affinity,
        pinned=pinned,
        queued=pacing.QueuedPod(key, created_at, priority, memory, constraints)
        if gating.paceable(gate_names)
        else None,
        held_by=held_by,
    )


class PodStore:
    """Live pods: the gated queue per policy, and the ledger of starts they feed."""

    def __init__(
        self, clock: Callable[[], float] = time.time, book: ledger.Ledger | None = None
    ) -> None:
        self.pods: dict[str, PodRecord] = {}
        self.clock = clock
        self.ledger = book if book is not None else ledger.Ledger()
        """Pods heading to or starting on each node (the one count of starts)."""
        self.gated: dict[str, dict[str, PodRecord]] = collections.defaultdict(dict)
        self.on_new: list[Callable[[PodRecord], None]] = []
        """Called once for every pod seen for the first time (shadow mode listens)."""
        self.on_gone: list[Callable[[PodRecord], None]] = []
        """Called when a pod leaves the store."""

    def _index(self, rec: PodRecord, sign: int) -> None:
        if not rec.gated:
            return
        # A gate without the webhook's annotation is still burstguard's gate: it is kept
        # under UNANNOTATED so the janitor finds it and lifts it.
        table = self.gated[rec.policy if rec.policy is not None else UNANNOTATED]
        if sign > 0:
            table[rec.key] = rec
        else:
            table.pop(rec.key, None)

    def _record_start(self, rec: PodRecord | None, old: PodRecord | None) -> None:
        """The pod's stage, as the watch shows it, into the ledger."""
        if rec is None:
            if old is not None:
                self.ledger.finish(old.key)
            return
        if rec.gated:
            return  # still queued (or an assumed release the watch has not shown yet)
        if rec.phase in ("Succeeded", "Failed"):
            self.ledger.finish(rec.key)
        elif rec.node is None:
            # A released pod the watch shows unbound. Counted when this operator booked its
            # release or when it is pinned (a release by an earlier leader holds its node's
            # slot); an annotation alone, which a pod can write on itself, books nothing.
            # The booking keeps the policy it was made for (None for the janitor's releases).
            booked = self.ledger.entries.get(rec.key)
            known = booked is not None or rec.pinned is not None
            if rec.phase == "Pending" and rec.policy is not None and not rec.held_by and known:
                self.ledger.confirm(
                    rec.key,
                    node=rec.pinned,
                    memory_bytes=rec.memory_bytes,
                    policy=booked.policy if booked is not None else rec.policy,
                    now=self.clock(),
                )
        elif rec.starting:
            self.ledger.bind(
                rec.key, node=rec.node, memory_bytes=rec.memory_bytes, now=self.clock()
            )
        else:  # bound, every container started
            entry = self.ledger.entries.get(rec.key)
            if entry is None or entry.stage == ledger.STARTED:
                return  # never seen starting (e.g. running before this operator started)
            if entry.node != rec.node or entry.stage == ledger.RELEASED:
                self.ledger.bind(
                    rec.key, node=rec.node, memory_bytes=rec.memory_bytes, now=self.clock()
                )
            self.ledger.start(rec.key, now=self.clock())

    def _queued_since(self, rec: PodRecord, old: PodRecord | None) -> PodRecord:
        """Keep the time a pod entered the pacer's queue across its updates.

        A pod joins the queue when burstguard's gate becomes the last one left, which for a
        pod another controller held is later than its creation: maxGateSeconds and the
        release order count from then, so a pod held for an hour is paced, not released at
        once as overdue. After a restart the creation time is all that is known.
        """
        if rec.queued is None or old is None or not old.gated:
            return rec
        since = self.clock() if old.queued is None else old.queued.created_at
        if since == rec.queued.created_at:
            return rec
        return dataclasses.replace(rec, queued=dataclasses.replace(rec.queued, created_at=since))

    def _put(self, rec: PodRecord | None, old: PodRecord | None) -> None:
        if rec is not None:
            rec = self._queued_since(rec, old)
        self._record_start(rec, old)
        if old is not None:
            self._index(old, -1)
        if rec is not None:
            self.pods[rec.key] = rec
            self._index(rec, +1)
        elif old is not None:
            del self.pods[old.key]

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        """A fresh list: forget what is gone, take in what is new."""
        fresh = {r.key: r for r in map(compact, objects)}
        for key in list(self.pods):
            if key not in fresh:
                gone = self.pods[key]
                self._put(None, gone)
                for fn in self.on_gone:
                    fn(gone)
        for key, rec in fresh.items():
            old = self.pods.get(key)
            self._put(rec, old)
            if old is None:
                for fn in self.on_new:
                    fn(rec)

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One watch event."""
        rec = compact(obj)
        old = self.pods.get(rec.key)
        if kind == "DELETED":
            if old is not None:
                self._put(None, old)
                for fn in self.on_gone:
                    fn(old)
            return
        self._put(rec, old)
        if old is None:
            for fn in self.on_new:
                fn(rec)

    def gated_count(self) -> int:
        """Pods carrying burstguard's gate, over all policies."""
        return sum(len(t) for t in self.gated.values())


def pin_ops(pod: PodRecord, node: str) -> list[dict[str, Any]]:
    """Add ``metadata.name In [node]`` to every required node-affinity term (KEP-3838)."""
    requirement = {"key": "metadata.name", "operator": "In", "values": [node]}
    return gating.require_ops(pod.affinity, requirement, field=True)


async def release(api: apiclient.Api, pod: PodRecord, node: str | None = None) -> str:
    """Remove burstguard's gate (and nothing else) in one patch; with ``node``, also pin it.

    The pin is added to every non-empty required node-affinity term, or as the one term of
    a pod that has none (allowed while the pod is gated: KEP-3838).

    Returns ``released``, ``gone`` (pod deleted) or ``ungated`` (the gate was already gone).
    If the gate moved (another gate removed before it), re-read the pod once and retry.
    """
    path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}"
    index = pod.gate_index
    for _ in range(2):
        if index is None:
            return "ungated"
        ops = [
            {
                "op": "test",
                "path": f"/spec/schedulingGates/{index}",
                "value": {"name": names.SCHEDULING_GATE},
            },
            {"op": "remove", "path": f"/spec/schedulingGates/{index}"},
        ]
        if node is not None:
            ops += pin_ops(pod, node)
        try:
            await api.request("PATCH", path, body=ops, content_type=apiclient.JSON_PATCH)
            return "released"
        except apiclient.ApiError as exc:
            if exc.status == 404:
                return "gone"
            if exc.status not in (409, 422):
                raise
        try:
            fresh = compact(await api.request("GET", path))
        except apiclient.ApiError as exc:
            if exc.status == 404:
                return "gone"
            raise
        index = fresh.gate_index
        pod = fresh
    return "ungated" if index is None else "conflict"


async def list_gated(api: apiclient.Api) -> list[PodRecord]:
    """Every pod carrying burstguard's gate (for ``burstguard release``)."""
    out: list[PodRecord] = []
    token: str | None = None
    while True:
        page = await api.request(
            "GET",
            PODS_PATH,
            query={"fieldSelector": "status.phase=Pending", "limit": 500, "continue": token},
        )
        out.extend(r for r in map(compact, page.get("items") or []) if r.gated)
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            return out
