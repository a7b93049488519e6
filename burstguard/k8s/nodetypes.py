"""What the agent's API calls exchange, without the kubernetes client: the error type and the
node condition.

Kept apart from ``k8s.nodes`` so that code which only handles these types (the sampling loop,
the publisher, and the incident lab's guard, which runs under emulation where importing the
kubernetes client costs seconds) does not import the client.
"""

from __future__ import annotations

from dataclasses import dataclass


class NodeApiError(RuntimeError):
    """A failed call, with the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Condition:
    """The node condition the agent owns."""

    status: bool
    """True when the node can take more starts."""
    reason: str
    """CamelCase reason (``HeadroomAvailable``, ``HeadroomShort``)."""
    message: str
    """Human text: state reasons and numbers."""
    last_transition: float
    """Unix seconds of the last status change."""
    heartbeat: float
    """Unix seconds of this publication."""
