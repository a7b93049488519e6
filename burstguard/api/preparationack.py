"""The preparation acknowledgement: what the agent did about a request, and what it freed.

Written by the agent as JSON in the Node annotation ``burstguard.io/prepare-ack`` after it has
handled a ``burstguard.io/prepare-request`` (``api.preparation``) or acted on its own
threshold. ``id`` repeats the request's id (``self-<unix seconds>`` for the agent's own
actions), so the operator can tell which request was served and stop re-asking; the agent
skips a request whose id equals the last acknowledged one. Versioned and validated like the
summary: a reader gets :class:`AckError` rather than a guess.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final

ACK_VERSION: Final = 1


class AckError(ValueError):
    """An acknowledgement annotation that cannot be decoded."""


@dataclass(frozen=True)
class ActionResult:
    """One action and its outcome."""

    kind: str
    """``compact``, ``cgroup_reclaim`` or ``drop_caches``."""
    target: str
    """cgroup path, the drop_caches value, or empty."""
    outcome: str
    """``done``, ``dry_run``, ``failed`` or ``skipped``."""
    freed_bytes: int = 0
    """Headroom gained across the action (measured), bytes; may be 0 or negative."""
    duration_s: float = 0.0
    """Wall time of the write, seconds."""
    detail: str = ""
    """Error text, skip reason, or what was asked."""


@dataclass(frozen=True)
class PrepareAck:
    """The acknowledgement of one request."""

    id: str
    """Request id, or ``self-<unix seconds>`` for the agent's own threshold."""
    done_at: float
    """Unix seconds when the agent finished."""
    dry_run: bool
    """True when nothing was executed (DryRun)."""
    bytes_wanted: int
    """What was asked, bytes."""
    freed_bytes: int
    """Headroom gained over the whole plan (measured), bytes."""
    headroom_before_bytes: int
    """Headroom before the first action, bytes."""
    headroom_after_bytes: int
    """Headroom after the last action, bytes."""
    actions: tuple[ActionResult, ...] = ()
    """Each action (executed, dry-run, failed or skipped), in order."""


def encode(ack: PrepareAck) -> str:
    """Serialize to compact JSON."""
    body: dict[str, Any] = {"v": ACK_VERSION, **asdict(ack)}
    body["actions"] = [asdict(a) for a in ack.actions]
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def decode(text: str) -> PrepareAck:
    """Parse and validate; raise :class:`AckError` on anything odd."""
    try:
        body: Any = json.loads(text)
    except ValueError as exc:
        raise AckError(f"prepare ack is not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("v") != ACK_VERSION:
        raise AckError("prepare ack must be a version-1 JSON object")
    try:
        actions = tuple(
            ActionResult(
                kind=str(a["kind"]),
                target=str(a.get("target", "")),
                outcome=str(a["outcome"]),
                freed_bytes=int(a.get("freed_bytes", 0)),
                duration_s=float(a.get("duration_s", 0.0)),
                detail=str(a.get("detail", "")),
            )
            for a in body.get("actions", [])
        )
        return PrepareAck(
            id=str(body["id"]),
            done_at=float(body["done_at"]),
            dry_run=bool(body["dry_run"]),
            bytes_wanted=int(body["bytes_wanted"]),
            freed_bytes=int(body["freed_bytes"]),
            headroom_before_bytes=int(body["headroom_before_bytes"]),
            headroom_after_bytes=int(body["headroom_after_bytes"]),
            actions=actions,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AckError(f"prepare ack field missing or malformed: {exc}") from exc
