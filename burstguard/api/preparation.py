"""The preparation request: what the operator asks of a node before a burst lands.

The operator knows the queued demand (gated pods and their memory); the agent knows what its
node can free. When a node's headroom is short of its share of the queued demand, the operator
writes this request as JSON in the Node annotation ``burstguard.io/prepare-request``; the
agent acts (compaction, targeted reclaim, page cache as a last resort) and acknowledges in
``burstguard.io/prepare-ack`` with the same ``id``. A new ``id`` means a new request; the
agent ignores an ``id`` it has already acknowledged. Encoding is pure and versioned.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final

REQUEST_VERSION: Final = 1


class RequestError(ValueError):
    """A preparation request annotation that cannot be decoded."""


@dataclass(frozen=True)
class PrepareRequest:
    """One request for a node to make room."""

    id: str
    """Unique id of the request (the agent acknowledges it by this id)."""
    bytes_wanted: int
    """Memory the node should free beyond its current headroom, bytes."""
    requested_at: float
    """When the operator wrote the request, Unix seconds."""
    policy: str = ""
    """Name of the BurstPolicy on whose behalf the request was made."""
    reason: str = ""
    """Why, in words (e.g. ``queued demand 2.0 GiB, headroom 0.5 GiB``)."""


def encode(request: PrepareRequest) -> str:
    """Serialize to the compact JSON stored in the annotation."""
    return json.dumps(
        {"v": REQUEST_VERSION, **asdict(request)}, separators=(",", ":"), sort_keys=True
    )


def decode(text: str) -> PrepareRequest:
    """Parse an annotation value; raise :class:`RequestError` on anything odd."""
    try:
        body: Any = json.loads(text)
    except ValueError as exc:
        raise RequestError(f"prepare request is not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("v") != REQUEST_VERSION:
        raise RequestError("prepare request must be a version-1 JSON object")
    try:
        return PrepareRequest(
            id=str(body["id"]),
            bytes_wanted=int(body["bytes_wanted"]),
            requested_at=float(body["requested_at"]),
            policy=str(body.get("policy", "")),
            reason=str(body.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RequestError(f"prepare request field missing or malformed: {exc}") from exc
