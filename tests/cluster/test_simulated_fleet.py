"""The simulated fleet on a real control plane whose kwok runs the simulated stages.

A second control plane (module fixture) starts kwok with ``simulation.stages``: kwok never
starts a pod there; the fleet process writes the started status when the node-memory model
finishes the start. Checked against the real apiserver, scheduler and kwok: the hold, the
published summary (flagged simulated), the condition, and the preparation round trip.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from burstguard.api import names, nodesummary, preparation, preparationack
from burstguard.core import preparation as planning
from burstguard.devcluster import binaries
from burstguard.devcluster import cluster as devcluster
from burstguard.k8s import apiclient, workloads
from burstguard.simulation import nodemodel, running, stages

GIB = 2**30
MIB = 2**20


@pytest.fixture(scope="module")
def sim_cluster(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: binaries.Binaries
) -> Iterator[devcluster.Cluster]:
    directory = tmp_path_factory.mktemp("simcluster")
    bins = stages.staged(control_plane_binaries, directory / "stages", run_ms=60_000)
    started = devcluster.Cluster.start(directory / "cluster", bins=bins)
    try:
        yield started
    finally:
        started.stop()


class Harness:
    """One simulated node, its fleet process, and an API client for the test."""

    def __init__(self, api: apiclient.Api, node: str, fleet: running.Fleet) -> None:
        self.api = api
        self.node = node
        self.fleet = fleet

    async def node_object(self) -> dict[str, Any]:
        obj: dict[str, Any] = await self.api.request("GET", f"/api/v1/nodes/{self.node}")
        return obj

    async def pod(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self.api.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods/{name}"
        )
        return obj

    async def create_pod(self, namespace: str, name: str, memory: str) -> None:
        body = {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": self.node},
                "containers": [
                    {"name": "c", "image": "img:1", "resources": {"requests": {"memory": memory}}}
                ],
            },
        }
        await workloads.create(self.api, f"/api/v1/namespaces/{namespace}/pods", body)


async def until(check: Any, timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


@pytest.fixture
async def harness(sim_cluster: devcluster.Cluster) -> AsyncIterator[Harness]:
    name = f"sim-{random.randrange(10**6)}"
    sim_cluster.create_nodes(
        1, prefix=f"{name}-", cpu="2", memory="8Gi", labels={running.SIMULATED_LABEL: "true"}
    )
    node = f"{name}-0"
    params = nodemodel.Params(memory_bytes=8 * GIB, cores=2, image_cache_bytes=0)
    state = nodemodel.initial(params, time.time(), params.marks.high_bytes + 2 * GIB, 4 * GIB)
    api = await apiclient.connect(str(sim_cluster.kubeconfig_path))
    fleet = running.Fleet(api, {node: (params, state)}, running.Config(publish_interval_s=2))
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:
        yield Harness(api, node, fleet)
    finally:
        stop.set()
        await task
        await api.close()


def started(pod: dict[str, Any]) -> bool:
    """Every container started, the way the operator counts it (k8s.pods)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(
        s.get("started") or "running" in (s.get("state") or {}) for s in statuses
    )


async def test_a_pod_stays_starting_until_the_model_finishes_its_start(harness: Harness) -> None:
    await workloads.create_namespace(harness.api, "simstart")
    # 1.5 GiB on 2 cores alone: 0.1 s overhead + 1.5 GiB / 0.75 GB/s ≈ 2.2 s of modelled start.
    await harness.create_pod("simstart", "big", "1536Mi")
    bound_at = await until(
        lambda: _bound_at(harness, "simstart", "big"), what="the pod to be bound"
    )
    await asyncio.sleep(1.0)
    assert not started(await harness.pod("simstart", "big")), "kwok started it before the model"
    pod = await until(
        lambda: _started_pod(harness, "simstart", "big"), what="the modelled start to finish"
    )
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"].startswith("10.244.")
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True", "the scheduler's condition stays"
    assert time.monotonic() - bound_at >= 2.0
    assert harness.fleet.stats.start_marks >= 1


async def _bound_at(harness: Harness, namespace: str, name: str) -> float | None:
    pod = await harness.pod(namespace, name)
    return time.monotonic() if (pod.get("spec") or {}).get("nodeName") else None


async def _started_pod(harness: Harness, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await harness.pod(namespace, name)
    return pod if started(pod) else None


async def test_the_node_carries_a_summary_and_condition_marked_simulated(
    harness: Harness,
) -> None:
    async def summary() -> nodesummary.NodeSummary | None:
        text = ((await harness.node_object())["metadata"].get("annotations") or {}).get(
            names.SUMMARY_ANNOTATION
        )
        return nodesummary.decode(text) if text else None

    published = await until(summary, what="a published summary")
    assert published.simulated and published.signal_source == "simulation"
    assert published.state == "Open"
    assert 1.9 * GIB <= published.headroom_bytes <= 2.1 * GIB

    async def condition() -> dict[str, Any] | None:
        found = [
            c
            for c in (await harness.node_object())["status"]["conditions"]
            if c["type"] == names.HEADROOM_CONDITION
        ]
        return found[0] if found else None

    # The condition is written right after the summary annotation, in a second request.
    mine = await until(condition, what="the BurstguardHeadroom condition")
    conditions = (await harness.node_object())["status"]["conditions"]
    assert mine["status"] == "True"
    assert mine["message"].startswith("SIMULATED")
    assert any(c["type"] == "Ready" for c in conditions), "kwok's own conditions survive"


async def _request_and_ack(harness: Harness, request_id: str) -> preparationack.PrepareAck:
    request = preparation.PrepareRequest(id=request_id, bytes_wanted=3 * GIB, requested_at=0.0)
    await harness.api.request(
        "PATCH",
        f"/api/v1/nodes/{harness.node}",
        body={
            "metadata": {
                "annotations": {names.PREPARE_REQUEST_ANNOTATION: preparation.encode(request)}
            }
        },
        content_type=apiclient.MERGE_PATCH,
    )

    async def ack() -> preparationack.PrepareAck | None:
        text = ((await harness.node_object())["metadata"].get("annotations") or {}).get(
            names.PREPARE_ACK_ANNOTATION
        )
        found = preparationack.decode(text) if text else None
        return found if found is not None and found.id == request_id else None

    return await until(ack, what="the acknowledgement")


async def test_with_the_agents_defaults_a_preparation_request_is_planned_but_frees_nothing(
    harness: Harness,
) -> None:
    done = await _request_and_ack(harness, "req-default")
    assert done.dry_run and done.freed_bytes == 0
    assert all(a.kind != "drop_caches" or a.outcome != "done" for a in done.actions)


async def test_an_acting_agent_drops_the_modelled_page_cache_once(
    harness: Harness,
) -> None:
    harness.fleet.config = replace(
        harness.fleet.config,
        dry_run=False,
        preparation=planning.Params(drop_page_cache=True),
    )
    done = await _request_and_ack(harness, "req-1")
    assert not done.dry_run and done.freed_bytes == 4 * GIB
    assert [(a.kind, a.outcome) for a in done.actions if a.outcome == "done"] == [
        ("drop_caches", "done")
    ]
    sim = harness.fleet.nodes[harness.node]
    assert nodemodel.headroom_bytes(sim.state, sim.params) >= 5.9 * GIB
    again = await _request_and_ack(harness, "req-2")
    assert again.freed_bytes == 0
    assert ("drop_caches", "skipped") in [(a.kind, a.outcome) for a in again.actions]
