"""Nodes as the operator sees them: compact records, a live store, label and request writes.

Only what steering and pacing need is kept: labels, the intake label, the decoded agent
summary (decoded again only when the annotation text changes), the agent's last preparation
acknowledgement, allocatable CPU for the per-core start limit, and whether the node can take
pods at all. A summary that fails to decode is kept as an error string: the node is then
treated as Stale, and status says why. An acknowledgement that fails to decode is kept as an
error string too; the request it would answer then stays pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from burstguard.api import names, nodesummary, preparation, preparationack, units
from burstguard.core import placement
from burstguard.k8s import apiclient

NODES_PATH: Final = "/api/v1/nodes"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What decisions need to know about one node."""

    name: str
    """Node name."""
    labels: Mapping[str, str]
    """metadata.labels."""
    summary: nodesummary.NodeSummary | None
    """Decoded agent summary; None when absent or undecodable."""
    summary_error: str
    """Why ``summary`` is None ("" when there is none at all or it decoded)."""
    cores: float | None
    """Allocatable CPU, cores."""
    schedulable: bool
    """Ready and not cordoned."""
    taints: tuple[placement.Taint, ...] = ()
    """spec.taints."""
    ack: preparationack.PrepareAck | None = None
    """Decoded ``burstguard.io/prepare-ack``; None when absent or undecodable."""
    ack_error: str = ""
    """Why ``ack`` is None ("" when there is none or it decoded)."""
    memory_bytes: int | None = None
    """Allocatable memory, bytes (None when absent or unreadable)."""

    @property
    def intake(self) -> str | None:
        """The current intake label value."""
        return self.labels.get(names.INTAKE_LABEL)


def _ready(status: Mapping[str, Any]) -> bool:
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


class NodeStore:
    """Live nodes."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        self._summary_text: dict[str, str] = {}
        self._ack_text: dict[str, str] = {}

    def _ack(
        self, name: str, old: NodeRecord | None, text: str | None
    ) -> tuple[preparationack.PrepareAck | None, str]:
        """The decoded acknowledgement, reusing the old record's when the text is unchanged."""
        if text is None or old is None:
            self._ack_text.pop(name, None)
        if text is None:
            return None, ""
        if old is not None and self._ack_text.get(name) == text:
            return old.ack, old.ack_error
        self._ack_text[name] = text
        try:
            return preparationack.decode(text), ""
        except preparationack.AckError as exc:
            return None, str(exc)

    def compact(self, obj: Mapping[str, Any]) -> NodeRecord:
        """Reduce a node object, reusing the decoded summary when its text is unchanged."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        text = (meta.get("annotations") or {}).get(names.SUMMARY_ANNOTATION)
        old = self.nodes.get(name)
        summary, error = None, ""
        if text is not None:
            if old is not None and self._summary_text.get(name) == text:
                summary, error = old.summary, old.summary_error
            else:
                try:
                    summary = nodesummary.decode(text)
                except nodesummary.SummaryError as exc:
                    error = str(exc)
            self._summary_text[name] = text
        else:
            self._summary_text.pop(name, None)
        ack, ack_error = self._ack(
            name, old, (meta.get("annotations") or {}).get(names.PREPARE_ACK_ANNOTATION)
        )
        status = obj.get("status") or {}
        cpu = (status.get("allocatable") or {}).get("cpu")
        cores = None
        if cpu is not None:
            try:
                cores = units.cpu_cores(cpu)
            except units.UnitError:
                cores = None
        memory = (status.get("allocatable") or {}).get("memory")
        memory_bytes = None
        if memory is not None:
            try:
                memory_bytes = units.quantity_bytes(memory)
            except units.UnitError:
                memory_bytes = None
        return NodeRecord(
            name=name,
            labels=dict(meta.get("labels") or {}),
            summary=summary,
            summary_error=error,
            cores=cores,
            memory_bytes=memory_bytes,
            schedulable=_ready(status) and not (obj.get("spec") or {}).get("unschedulable"),
            taints=tuple(
                placement.Taint(
                    key=str(t.get("key", "")),
                    value=str(t.get("value") or ""),
                    effect=str(t.get("effect") or "NoSchedule"),
                )
                for t in (obj.get("spec") or {}).get("taints") or ()
            ),
            ack=ack,
            ack_error=ack_error,
        )

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        """A fresh list."""
        fresh = {}
        for obj in objects:
            rec = self.compact(obj)
            fresh[rec.name] = rec
        for gone in set(self.nodes) - set(fresh):
            self._summary_text.pop(gone, None)
            self._ack_text.pop(gone, None)
        self.nodes = fresh

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One watch event."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        if kind == "DELETED":
            self.nodes.pop(name, None)
            self._summary_text.pop(name, None)
            self._ack_text.pop(name, None)
            return
        self.nodes[name] = self.compact(obj)


async def set_intake(api: apiclient.Api, node: str, value: str | None) -> None:
    """Set (or with None remove) the node's ``burstguard.io/intake`` label."""
    await api.request(
        "PATCH",
        f"{NODES_PATH}/{node}",
        body={"metadata": {"labels": {names.INTAKE_LABEL: value}}},
        content_type=apiclient.MERGE_PATCH,
    )


async def write_prepare_request(
    api: apiclient.Api, node: str, request: preparation.PrepareRequest
) -> None:
    """Write a preparation request annotation on the node."""
    body = {
        "metadata": {"annotations": {names.PREPARE_REQUEST_ANNOTATION: preparation.encode(request)}}
    }
    await api.request(
        "PATCH", f"{NODES_PATH}/{node}", body=body, content_type=apiclient.MERGE_PATCH
    )
