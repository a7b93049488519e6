"""Fleet facts from Node objects, for ``burstguard recommend`` and the demo report.

One list call (synchronous ``kubernetes`` client: a command-line tool does one call and
exits, no event loop needed) reduced to what recommendations need per node: allocatable
cores, memory capacity, and the kernel release and ``shrinker_rwsem`` exposure from the
agent's summary (or, without a summary, the kubelet's ``nodeInfo.kernelVersion``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from burstguard.api import names, nodesummary, units
from burstguard.core import kernel


class FleetApiError(RuntimeError):
    """The API server could not be read."""


@dataclass(frozen=True)
class NodeFacts:
    """What recommendations need to know about one Node."""

    name: str
    """Node name."""
    cores: float | None
    """Allocatable CPU, cores."""
    memory_bytes: int | None
    """Memory capacity, bytes."""
    kernel_release: str
    """From the summary, else nodeInfo.kernelVersion."""
    shrinker_exposed: bool | None
    """From the summary, else judged from the release; None when unknown."""
    simulated: bool
    """The summary was written by the simulated fleet."""
    summary: nodesummary.NodeSummary | None
    """The decoded summary, None when absent or undecodable."""


def _quantity(value: Any, convert: Any) -> Any:
    if value is None:
        return None
    try:
        return convert(value)
    except (ValueError, units.UnitError):
        return None


def facts_of(node: dict[str, Any]) -> NodeFacts:
    """Reduce one Node (as a plain dict) to its facts."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    text = (meta.get("annotations") or {}).get(names.SUMMARY_ANNOTATION)
    summary = None
    if text:
        try:
            summary = nodesummary.decode(text)
        except nodesummary.SummaryError:
            summary = None
    release = (summary.kernel_release if summary else "") or str(
        (status.get("nodeInfo") or {}).get("kernelVersion") or ""
    )
    exposed: bool | None
    if summary is not None:
        exposed = summary.shrinker_exposed
    else:
        exposed = kernel.shrinker_exposure(release).exposed if release else None
    return NodeFacts(
        name=str(meta.get("name", "")),
        cores=_quantity((status.get("allocatable") or {}).get("cpu"), units.cpu_cores),
        memory_bytes=_quantity((status.get("capacity") or {}).get("memory"), units.quantity_bytes),
        kernel_release=release,
        shrinker_exposed=exposed,
        simulated=bool(summary and summary.simulated),
        summary=summary,
    )


def node_facts(kubeconfig: str | None = None) -> dict[str, NodeFacts]:
    """Every Node's facts, by name."""
    loader: Any = k8s_config  # the kubernetes package ships no type hints
    try:
        api = (
            loader.new_client_from_config(config_file=kubeconfig)
            if kubeconfig
            else k8s_client.ApiClient()
        )
        with api:
            response: Any = k8s_client.CoreV1Api(api).list_node(
                _preload_content=False, _request_timeout=30
            )
            raw = json.loads(response.data)
    except Exception as exc:  # config errors, connection errors, HTTP errors
        raise FleetApiError(f"cannot list Nodes: {exc}") from exc
    items = raw.get("items") if isinstance(raw, dict) else None
    return {f.name: f for f in (facts_of(n) for n in items or [])}
