"""Watch-observed pod milestones for the node benchmark: created, ungated, scheduled, started,
finished.

An informer store (``watching.Informer``) that stamps each milestone with the local wall
clock the first time the watch shows it: status timestamps have one-second resolution, too
coarse for starts of about a second. "Started" is the pod status saying every container has
started (``containerStatuses[].started`` or a running/terminated state); "ungated" is
burstguard's scheduling gate gone from a pod that had it; "scheduled" is ``spec.nodeName`` set
(the pod bound to its node).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from burstguard.api import names


@dataclass
class Milestones:
    """One pod's first-seen times, Unix seconds."""

    created_at: float
    gated: bool = False
    ungated_at: float | None = None
    scheduled_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


def _all_started(status: Mapping[str, Any]) -> bool:
    containers = status.get("containerStatuses") or []
    if not containers:
        return False
    for c in containers:
        state = c.get("state") or {}
        if not (c.get("started") or "running" in state or "terminated" in state):
            return False
    return True


class PodTimes:
    """Informer store: ``pods[name]`` is that pod's :class:`Milestones`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.pods: dict[str, Milestones] = {}

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        """A fresh list: every pod is an update."""
        for obj in objects:
            self.apply("MODIFIED", obj)

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One watch event."""
        if kind == "DELETED":
            return
        now = self.clock()
        name = str((obj.get("metadata") or {}).get("name", ""))
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        m = self.pods.get(name)
        gates = [g.get("name") for g in spec.get("schedulingGates") or []]
        if m is None:
            m = self.pods[name] = Milestones(now, gated=names.SCHEDULING_GATE in gates)
        if m.gated and m.ungated_at is None and names.SCHEDULING_GATE not in gates:
            m.ungated_at = now
        if m.scheduled_at is None and spec.get("nodeName"):
            m.scheduled_at = now
        if m.started_at is None and _all_started(status):
            m.started_at = now
        if m.finished_at is None and status.get("phase") in ("Succeeded", "Failed"):
            m.finished_at = now

    def count(self, what: str) -> int:
        """Pods that reached ``created``, ``scheduled``, ``started`` or ``finished``."""
        if what == "created":
            return len(self.pods)
        return sum(1 for m in self.pods.values() if getattr(m, f"{what}_at") is not None)
