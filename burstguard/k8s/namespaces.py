"""Namespace labels, for policies that select pods by namespace (the webhook reads them).

An AdmissionReview carries the pod but not its namespace's labels, so the operator keeps
them from a watch; a namespace not yet seen is matched by its name label alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

NAMESPACES_PATH: Final = "/api/v1/namespaces"


class NamespaceStore:
    """Labels by namespace name."""

    def __init__(self) -> None:
        self.labels: dict[str, Mapping[str, str]] = {}
        self.version = 0
        """Bumped on every change, so answers derived from labels can be cached."""

    def get(self, name: str) -> Mapping[str, str]:
        """Labels of ``name`` ({} when unknown)."""
        return self.labels.get(name, {})

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        """A fresh list."""
        self.labels = {
            str((o.get("metadata") or {}).get("name", "")): dict(
                (o.get("metadata") or {}).get("labels") or {}
            )
            for o in objects
        }
        self.version += 1

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One watch event."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        labels = dict(meta.get("labels") or {})
        if kind == "DELETED":
            self.labels.pop(name, None)
        elif self.labels.get(name) == labels:
            return
        else:
            self.labels[name] = labels
        self.version += 1
