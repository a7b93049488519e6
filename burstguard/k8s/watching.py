"""List-then-watch for one resource, feeding a store of compact records.

The operator needs the live set of pods, nodes, namespaces and policies without a kopf
handler per object (10k gated pods must stay cheap). Each informer lists in pages (bounded
memory), hands the complete set to the store (``replace``), then watches from the list's
resourceVersion with bookmarks, handing each event to the store (``apply``). On a watch end
it resumes from the last seen resourceVersion; on "410 Gone" or any error it relists after a
short back-off. The store keeps only what decisions need (see ``k8s.pods``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

from burstguard.k8s import apiclient

log = logging.getLogger(__name__)

PAGE: Final = 500
"""Objects per list page."""
WATCH_TIMEOUT_S: Final = 290
"""Server-side watch timeout, seconds (the client waits a little longer)."""
BACKOFF_S: Final = 1.0
"""Pause before relisting after an error, seconds."""


class Store(Protocol):
    """What an informer feeds."""

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        """The complete current set (after a list)."""

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One watch event: ``ADDED``, ``MODIFIED`` or ``DELETED``."""


class Informer:
    """Keeps ``store`` in step with ``path`` (a collection URL such as ``/api/v1/pods``)."""

    def __init__(
        self,
        api: apiclient.Api,
        path: str,
        store: Store,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.store = store
        self.selectors = {"fieldSelector": field_selector, "labelSelector": label_selector}
        self.synced = asyncio.Event()
        self.relists = 0

    async def _list(self) -> str:
        objects: list[Mapping[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            page = await self.api.request(
                "GET", self.path, query={**self.selectors, "limit": PAGE, "continue": token}
            )
            objects.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion", ""))
            token = meta.get("continue") or None
            if not token:
                break
        self.store.replace(objects)
        self.relists += 1
        return version

    async def _watch(self, version: str) -> str | None:
        """Watch from ``version``; return the version to resume from, None to relist."""
        query = {
            **self.selectors,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": WATCH_TIMEOUT_S,
        }
        async for event in self.api.lines(self.path, query=query, timeout=WATCH_TIMEOUT_S + 30):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") != 410:
                    log.warning("watch %s error: %s", self.path, obj.get("message"))
                return None
            version = str((obj.get("metadata") or {}).get("resourceVersion", version))
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.store.apply(kind, obj)
        return version

    async def run(self) -> None:
        """Run forever (cancel to stop)."""
        while True:
            try:
                version: str | None = await self._list()
                self.synced.set()
                while version is not None:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: relist after a pause
                log.warning("informer %s failed, relisting: %s", self.path, exc)
            await asyncio.sleep(BACKOFF_S)
