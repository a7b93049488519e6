"""Kubernetes Events on pods and policies (core/v1), so ``kubectl describe`` tells the story.

Events are best effort: a failure to post one is logged and never stops pacing.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Final

from burstguard.api import times
from burstguard.k8s import apiclient

log = logging.getLogger(__name__)

COMPONENT: Final = "burstguard-operator"


async def emit(
    api: apiclient.Api,
    *,
    kind: str,
    name: str,
    namespace: str = "",
    uid: str = "",
    api_version: str = "v1",
    reason: str,
    message: str,
    warning: bool = False,
) -> None:
    """Post one Event about an object (cluster-scoped objects get it in ``default``)."""
    now = times.rfc3339(time.time())
    event_ns = namespace or "default"
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": event_ns},
        "involvedObject": {
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "namespace": namespace or None,
            "uid": uid or None,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await api.request("POST", f"/api/v1/namespaces/{event_ns}/events", body=body)
    except Exception as exc:  # events must never break pacing
        log.warning("could not post event %s on %s/%s: %s", reason, kind, name, exc)
