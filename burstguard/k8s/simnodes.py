"""API calls of the simulated fleet (``burstguard.simulation``), which plays the agent for kwok.

The same writes the real agent makes, on many Nodes from one process (``kubernetes.aio``
through :class:`~burstguard.k8s.apiclient.Api`, raw JSON: one event loop serves a thousand
nodes): the summary annotation (JSON merge patch on the Node), the ``BurstguardHeadroom``
condition (strategic merge patch on ``nodes/status``: conditions merge by type), the
preparation acknowledgement, and one more the agent never makes: the pod status that says a
simulated start has finished (containers started, Ready), written where a kubelet would write
it. The fleet writes it itself rather than asking kwok to: one write per start instead of two,
and kwok's stage queue (a few pod stages a second on a loaded 2-core host, with stale-object
replays) is out of the path that decides how long a start takes.
"""

from __future__ import annotations

from typing import Any, Final

from burstguard.api import names, times, units
from burstguard.k8s import apiclient

STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"


async def annotate_node(api: apiclient.Api, node: str, values: dict[str, str]) -> None:
    """Merge ``values`` into the Node's annotations."""
    await api.request(
        "PATCH",
        f"/api/v1/nodes/{node}",
        body={"metadata": {"annotations": values}},
        content_type=apiclient.MERGE_PATCH,
    )


async def set_condition(
    api: apiclient.Api,
    node: str,
    *,
    is_open: bool,
    message: str,
    last_transition: float,
    now: float,
) -> None:
    """Write the ``BurstguardHeadroom`` condition (only this condition is touched)."""
    condition = {
        "type": names.HEADROOM_CONDITION,
        "status": "True" if is_open else "False",
        "reason": "HeadroomAvailable" if is_open else "HeadroomShort",
        "message": message,
        "lastTransitionTime": times.rfc3339(last_transition),
        "lastHeartbeatTime": times.rfc3339(now),
    }
    await api.request(
        "PATCH",
        f"/api/v1/nodes/{node}/status",
        body={"status": {"conditions": [condition]}},
        content_type=STRATEGIC_MERGE_PATCH,
    )


async def mark_started(
    api: apiclient.Api,
    key: str,
    containers: list[tuple[str, str]],
    *,
    pod_ip: str,
    host_ip: str,
    now: float,
) -> None:
    """Write the status of pod ``namespace/name`` as started and Ready (gone pods are fine).

    ``containers`` lists (name, image). A strategic merge patch: conditions merge by type and
    container statuses by name, so the scheduler's PodScheduled condition stays.
    """
    namespace, _, name = key.partition("/")
    stamp = times.rfc3339(now)
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": stamp}
        for kind in ("Initialized", "Ready", "ContainersReady")
    ]
    statuses = [
        {
            "name": container,
            "image": image,
            "imageID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": stamp}},
        }
        for container, image in containers
    ]
    body = {
        "status": {
            "phase": "Running",
            "startTime": stamp,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "conditions": conditions,
            "containerStatuses": statuses,
        }
    }
    try:
        await api.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            body=body,
            content_type=STRATEGIC_MERGE_PATCH,
        )
    except apiclient.ApiError as exc:
        if exc.status != 404:
            raise


def containers_of(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, image) of every container of a pod."""
    return [
        (str(c.get("name", "")), str(c.get("image", "")))
        for c in (obj.get("spec") or {}).get("containers") or []
    ]


def pod_facts(obj: dict[str, Any]) -> tuple[str, str | None, str, bool, int | None, str]:
    """(key, node, phase, deleting, memory request bytes or None, first image) of a pod."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    memory, seen = 0, False
    for c in spec.get("containers") or []:
        value = ((c.get("resources") or {}).get("requests") or {}).get("memory")
        if value is not None:
            try:
                memory += units.quantity_bytes(value)
                seen = True
            except (ValueError, units.UnitError):
                continue
    containers = spec.get("containers") or [{}]
    return (
        f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        spec.get("nodeName") or None,
        str(status.get("phase") or "Pending"),
        bool(meta.get("deletionTimestamp")),
        memory if seen else None,
        str(containers[0].get("image") or ""),
    )
