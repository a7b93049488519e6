"""Reading and writing the operator's ``coordination.k8s.io/v1`` Lease.

Translation only: a Lease object to :class:`core.leadership.LeaseRecord` and back, with the
resourceVersion carried alongside so every write is conditional on the read it follows (a
409 means another replica wrote first). Decisions are in ``core.leadership``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from burstguard.core import leadership
from burstguard.k8s import apiclient


class Conflict(Exception):
    """The Lease changed (or appeared) since it was read: someone else wrote first."""


@dataclass(frozen=True)
class Read:
    """One read of the Lease: its record (None when absent) and resourceVersion."""

    record: leadership.LeaseRecord | None
    version: str | None


def path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return base if name is None else f"{base}/{name}"


def _micro(t: float | None) -> str | None:
    """A MicroTime (RFC 3339 with microseconds, UTC)."""
    if t is None:
        return None
    dt = datetime.datetime.fromtimestamp(t, tz=datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def record_of(obj: dict[str, Any]) -> leadership.LeaseRecord:
    """The election fields of a Lease object (missing or odd fields read as empty)."""
    spec = obj.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return leadership.LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_s=duration if isinstance(duration, int) and duration > 0 else 1,
        acquire_time=_epoch(spec.get("acquireTime")),
        renew_time=_epoch(spec.get("renewTime")),
        transitions=transitions if isinstance(transitions, int) else 0,
    )


def spec_of(record: leadership.LeaseRecord) -> dict[str, Any]:
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_s,
        "acquireTime": _micro(record.acquire_time),
        "renewTime": _micro(record.renew_time),
        "leaseTransitions": record.transitions,
    }


async def read(api: apiclient.Api, namespace: str, name: str, timeout: float) -> Read:
    obj = await api.get_or_none(path(namespace, name), timeout=timeout)
    if obj is None:
        return Read(record=None, version=None)
    return Read(record=record_of(obj), version=obj["metadata"].get("resourceVersion"))


async def write(
    api: apiclient.Api,
    namespace: str,
    name: str,
    record: leadership.LeaseRecord,
    *,
    version: str | None,
    timeout: float,
) -> None:
    """Create the Lease (``version`` None) or replace it at ``version``; :class:`Conflict`
    when another writer got there first."""
    body: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec_of(record),
    }
    try:
        if version is None:
            await api.request("POST", path(namespace), body=body, timeout=timeout)
        else:
            body["metadata"]["resourceVersion"] = version
            await api.request("PUT", path(namespace, name), body=body, timeout=timeout)
    except apiclient.ApiError as exc:
        if exc.status == 409:  # AlreadyExists on create, Conflict on a stale version
            raise Conflict(str(exc)) from exc
        raise
