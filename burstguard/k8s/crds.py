"""Installing burstguard's CRDs from the package (dev clusters, tests; Helm in a cluster).

The YAML in ``burstguard/api/crds/`` is the source of truth; this creates or replaces the
object and waits until the API server reports it Established, so the caller can create
BurstPolicies right after.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any, Final

import yaml

from burstguard.k8s import apiclient

CRDS_PATH: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def manifests() -> list[dict[str, Any]]:
    """Every CRD shipped in the package."""
    folder = resources.files("burstguard.api").joinpath("crds")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out.append(yaml.safe_load(entry.read_text()))
    return out


async def install(api: apiclient.Api, *, timeout_s: float = 30.0) -> list[str]:
    """Create or replace every CRD and wait until each is Established; return their names."""
    installed = []
    for body in manifests():
        name = body["metadata"]["name"]
        try:
            await api.request("POST", CRDS_PATH, body=body)
        except apiclient.ApiError as exc:
            if exc.status != 409:
                raise
            current = await api.request("GET", f"{CRDS_PATH}/{name}")
            meta = {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
            await api.request("PUT", f"{CRDS_PATH}/{name}", body={**body, "metadata": meta})
        deadline = time.monotonic() + timeout_s
        while True:
            crd = await api.request("GET", f"{CRDS_PATH}/{name}")
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout_s:.0f}s")
            await asyncio.sleep(0.2)
        installed.append(name)
    return installed
