"""BurstPolicy objects: a live, parsed registry and status writes.

The registry parses each object once per change (api.policy.parse) and keeps the valid ones
in seniority order, so the webhook can pick the owning policy of a pod without work on the
request path. Status goes through the status subresource with a merge patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from burstguard.api import names
from burstguard.api import policy as policy_api
from burstguard.core import selection
from burstguard.k8s import apiclient

POLICIES_PATH: Final = f"/apis/{names.GROUP}/{names.VERSION}/{names.POLICY_PLURAL}"


class PolicyStore:
    """Parsed policies by name, plus the valid ones oldest first."""

    def __init__(self) -> None:
        self.policies: dict[str, policy_api.BurstPolicy] = {}
        self.ordered: list[policy_api.BurstPolicy] = []
        self.version = 0
        """Bumped on every change (cheap change detection for readers)."""

    def _reorder(self) -> None:
        self.ordered = selection.by_seniority(self.policies.values())
        self.version += 1

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        """A fresh list."""
        self.policies = {p.name: p for p in map(policy_api.parse, objects)}
        self._reorder()

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One watch event."""
        parsed = policy_api.parse(obj)
        if kind == "DELETED":
            self.policies.pop(parsed.name, None)
        else:
            self.policies[parsed.name] = parsed
        self._reorder()


async def patch_status(api: apiclient.Api, name: str, status: Mapping[str, Any]) -> None:
    """Merge-patch ``status`` of a policy."""
    await api.request(
        "PATCH",
        f"{POLICIES_PATH}/{name}/status",
        body={"status": dict(status)},
        content_type=apiclient.MERGE_PATCH,
    )
