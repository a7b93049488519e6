"""The demo's and benchmark's calls: namespaces, a burst Job, a BurstPolicy, and counters.

``burstguard demo`` and the scale benchmark launch a burst the way a batch system does (one
Job with high parallelism) and watch it land. Counting happens in informer stores
(:class:`PodCounts`, :class:`IntakeCounts`) so the live progress line costs no extra API
calls. Raw JSON through :class:`~burstguard.k8s.apiclient.Api`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from burstguard.api import names
from burstguard.k8s import apiclient

PACE_LABEL: Final = "burstguard.io/pace"
"""Pod label the demo's policy selects (value ``true``)."""


async def create_namespace(api: apiclient.Api, name: str) -> None:
    """Create a namespace (an existing one is fine)."""
    try:
        await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    except apiclient.ApiError as exc:
        if exc.status != 409:
            raise


async def delete_namespace(api: apiclient.Api, name: str) -> None:
    """Delete a namespace without waiting (a missing one is fine)."""
    try:
        await api.request("DELETE", f"/api/v1/namespaces/{name}")
    except apiclient.ApiError as exc:
        if exc.status != 404:
            raise


async def namespace_gone(api: apiclient.Api, name: str) -> bool:
    """True once the namespace no longer exists."""
    return await api.get_or_none(f"/api/v1/namespaces/{name}") is None


def burst_job(
    name: str,
    pods: int,
    *,
    memory: str,
    run_seconds: float,
    image: str = "registry.local/batch-worker:1",
    node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Job of ``pods`` pods all at once (parallelism = completions), paced by label."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "completionMode": "NonIndexed",
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {PACE_LABEL: "true", "app": name},
                    "annotations": {
                        "pod-complete.stage.kwok.x-k8s.io/delay": f"{run_seconds:g}s",
                    },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": dict(node_selector or {}),
                    "containers": [
                        {
                            "name": "work",
                            "image": image,
                            "resources": {"requests": {"memory": memory, "cpu": "10m"}},
                        }
                    ],
                },
            },
        },
    }


def burst_cronjob(
    job: Mapping[str, Any], schedule: str, time_zone: str = "Etc/UTC"
) -> dict[str, Any]:
    """A CronJob whose runs are ``job`` (a :func:`burst_job`), firing on ``schedule`` in
    ``time_zone``; one run at a time, and no catching up on missed fires."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": job["metadata"]["name"]},
        "spec": {
            "schedule": schedule,
            "timeZone": time_zone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 60,
            "jobTemplate": {"spec": job["spec"]},
        },
    }


async def create(api: apiclient.Api, path: str, body: Mapping[str, Any]) -> Any:
    """POST an object to a collection path."""
    return await api.request("POST", path, body=dict(body))


async def jobs_finished(api: apiclient.Api, namespace: str) -> str:
    """ "" while any Job in ``namespace`` runs (or none exists yet); otherwise each Job's
    final condition, e.g. ``Complete`` or ``Failed: BackoffLimitExceeded``."""
    body = await api.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs")
    items = body.get("items") or []
    ends = []
    for job in items:
        conditions = (job.get("status") or {}).get("conditions") or []
        final = [
            c
            for c in conditions
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        ]
        if not final:
            return ""
        c = final[0]
        ends.append(c["type"] if c["type"] == "Complete" else f"Failed: {c.get('reason', '')}")
    return ", ".join(ends)


async def read_policy(api: apiclient.Api, name: str) -> dict[str, Any]:
    """A BurstPolicy as the API server serves it (CRD defaults filled in)."""
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.POLICY_PLURAL}/{name}"
    return dict(await api.request("GET", path))


async def apply_policy(api: apiclient.Api, body: Mapping[str, Any]) -> None:
    """Create a BurstPolicy, replacing one of the same name."""
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.POLICY_PLURAL}"
    name = body["metadata"]["name"]
    try:
        await api.request("POST", path, body=dict(body))
    except apiclient.ApiError as exc:
        if exc.status != 409:
            raise
        current = await api.request("GET", f"{path}/{name}")
        replacement = {**body, "metadata": {**body["metadata"], **_rv(current)}}
        await api.request("PUT", f"{path}/{name}", body=replacement)


async def delete_policy(api: apiclient.Api, name: str) -> None:
    """Delete a BurstPolicy (a missing one is fine)."""
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.POLICY_PLURAL}/{name}"
    try:
        await api.request("DELETE", path)
    except apiclient.ApiError as exc:
        if exc.status != 404:
            raise


def _rv(obj: Mapping[str, Any]) -> dict[str, str]:
    return {"resourceVersion": str((obj.get("metadata") or {}).get("resourceVersion", ""))}


def _started(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    statuses = status.get("containerStatuses") or []
    return bool(statuses) and all(s.get("started") for s in statuses)


@dataclass
class PodCounts:
    """Pods of one namespace by stage, kept by an informer (first-seen times included)."""

    namespace: str
    pods: dict[str, str] = field(default_factory=dict)
    """name -> ``gated``, ``pending``, ``starting``, ``running`` or ``done``."""
    nodes: dict[str, str] = field(default_factory=dict)
    """name -> node, once bound."""
    started_at: dict[str, float] = field(default_factory=dict)
    """name -> when it was first seen started, monotonic seconds."""
    released_at: dict[str, float] = field(default_factory=dict)
    """name -> when it was first seen without scheduling gates, monotonic seconds."""
    ungated: set[str] = field(default_factory=set)
    """Pods first seen without burstguard's gate: created ungated (no policy selected them,
    or the webhook failed open)."""

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        for obj in objects:
            self.apply("ADDED", obj)

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("namespace") != self.namespace:
            return
        name = str(meta.get("name", ""))
        if kind == "DELETED":
            self.pods.pop(name, None)
            return
        spec = obj.get("spec") or {}
        now = time.monotonic()
        node = spec.get("nodeName")
        if name not in self.pods and not any(
            g.get("name") == names.SCHEDULING_GATE for g in spec.get("schedulingGates") or []
        ):
            self.ungated.add(name)
        if not spec.get("schedulingGates"):
            self.released_at.setdefault(name, now)
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            stage = "done"
        elif spec.get("schedulingGates"):
            stage = "gated"
        elif not node:
            stage = "pending"
        elif _started(obj):
            stage = "running"
        else:
            stage = "starting"
        if node:
            self.nodes[name] = str(node)
        if stage in ("running", "done"):
            self.started_at.setdefault(name, now)
        self.pods[name] = stage

    def count(self, stage: str) -> int:
        """Pods in ``stage``."""
        return sum(1 for s in self.pods.values() if s == stage)


@dataclass
class IntakeCounts:
    """Nodes by their ``burstguard.io/intake`` label (unlabelled counts as open)."""

    intake: dict[str, str] = field(default_factory=dict)

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        self.intake.clear()
        for obj in objects:
            self.apply("ADDED", obj)

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        if kind == "DELETED":
            self.intake.pop(name, None)
            return
        self.intake[name] = (meta.get("labels") or {}).get(names.INTAKE_LABEL, names.INTAKE_OPEN)

    def closed(self) -> int:
        """Nodes labelled closed."""
        return sum(1 for v in self.intake.values() if v == names.INTAKE_CLOSED)
