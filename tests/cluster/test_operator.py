"""The operator on the real local control plane: gating, pacing, steering, fail-open, shadow.

One operator subprocess serves the module (``burstguard operator`` with KUBECONFIG, called by
the real apiserver over TLS through the MutatingWebhookConfiguration the Helm chart renders,
pointed at the operator's URL); tests that stop or kill it start it again. Every test selects
its pods by a label of its own and guards only its own kwok nodes, so tests sharing the
control plane do not see each other's policies.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from kubernetes import client as k8s_client

from burstguard.api import names, preparation
from tests.chart import render
from tests.cluster import kueueing, operating
from tests.cluster.builders import JobBuilder, PodBuilder, wait_for
from tests.conftest import ClusterFixture, NodeGroup

RUN_LABEL = "burstguard.test/run"
OTHER_GATE = "example.com/admission"
"""Another controller's scheduling gate."""
MI = 2**20


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[operating.OperatorProcess]:
    op = operating.OperatorProcess(
        cluster.kubeconfig_path, tmp_path_factory.mktemp("operator"), register_webhook=False
    )
    op.start()  # makes workdir/certs/{ca.pem,tls.crt,tls.key}; port and certs survive restarts
    try:
        with (
            cluster.api_client() as api,
            render.registered_webhook(
                api,
                url=f"https://127.0.0.1:{op.webhook_port}/mutate-pods",
                ca_pem=(op.workdir / "certs" / "ca.pem").read_bytes(),
                release="burstguard",
                # the shared 2-core test machine stalls processes for seconds (chart default 2)
                values={"webhook": {"timeoutSeconds": 10}},
            ),
        ):
            yield op
    finally:
        op.stop()


@pytest.fixture
def api(cluster: ClusterFixture) -> Iterator[k8s_client.ApiClient]:
    with cluster.api_client() as client:
        yield client


@pytest.fixture
def core(api: k8s_client.ApiClient) -> k8s_client.CoreV1Api:
    return k8s_client.CoreV1Api(api)


@pytest.fixture
def policies(api: k8s_client.ApiClient) -> Iterator[operating.Policies]:
    made = operating.Policies(api)
    try:
        yield made
    finally:
        made.delete_all()


def ensure_running(op: operating.OperatorProcess) -> None:
    if op.proc is None or op.proc.poll() is not None:
        op.start()


def not_ready(policies: operating.Policies, name: str) -> dict[str, Any] | None:
    condition = policies.ready(name)
    return condition if condition and condition["status"] == "False" else None


def status_with_delays(
    policies: operating.Policies, name: str, least: int
) -> dict[str, Any] | None:
    status: dict[str, Any] = policies.get(name).get("status") or {}
    return status if (status.get("wouldHave") or {}).get("delayedPods", 0) >= least else None


def pin_of(pod: dict[str, Any]) -> str | None:
    """The node a release pinned the pod to (the same in every required term), or None."""
    terms = (
        ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    pins = {
        tuple(f["values"])
        for t in terms
        for f in t.get("matchFields") or []
        if f["key"] == "metadata.name" and f["operator"] == "In"
    }
    if len(pins) != 1 or len(terms) != sum(bool(t.get("matchFields")) for t in terms):
        return None
    (values,) = pins
    return values[0] if len(values) == 1 else None


def guarded_nodes(
    cluster: ClusterFixture,
    operator: operating.OperatorProcess,
    core: k8s_client.CoreV1Api,
    policies: operating.Policies,
    *,
    prefix: str,
    headrooms: Sequence[int | None],
    pacing: dict[str, Any] | None = None,
    mode: str = "Enforce",
    wait_ready: bool = True,
) -> tuple[NodeGroup, str]:
    """Fresh kwok nodes guarded by a new policy that selects pods labelled with its name.

    Node ``i`` publishes a summary with ``headrooms[i]`` bytes (None: no summary). Returns
    the nodes and the policy name (also the pods' label value), after the policy reports
    Ready (Enforce) or DryRun, unless ``wait_ready`` is False.
    """
    ensure_running(operator)
    nodes = cluster.create_nodes(len(headrooms))
    for name, headroom in zip(nodes.names, headrooms, strict=True):
        if headroom is not None:
            operating.publish(core, name, headroom)
    run = operating.unique(prefix)
    policies.create(
        operating.burst_policy(
            run, mode=mode, pod_labels={RUN_LABEL: run}, node_labels=nodes.selector, pacing=pacing
        )
    )
    if wait_ready:
        wait_for(
            "policy ready",
            lambda: (
                (policies.ready(run) or {}).get("reason") == "DryRun"
                if mode == "DryRun"
                else (policies.ready(run) or {}).get("status") == "True"
            ),
            timeout_s=30,
        )
    return nodes, run


def labelled_pod(name: str, run: str, selector: dict[str, str]) -> dict[str, Any]:
    pod = PodBuilder(name).node_selector(selector).build()
    pod["metadata"]["labels"] = {RUN_LABEL: run}
    return pod


class TestGatingAndPacing:
    def test_a_300_pod_job_is_gated_at_creation_and_released_at_the_policy_rate(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        api: k8s_client.ApiClient,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        rate, burst, per_node = 40.0, 20, 4
        nodes, run = guarded_nodes(
            cluster,
            operator,
            core,
            policies,
            prefix="job",
            headrooms=[64 * operating.GI] * 10,
            pacing={"releasePerSecond": rate, "burst": burst, "maxStartingPerNode": per_node},
        )
        job = JobBuilder(run, 300).node_selector(nodes.selector).build()
        template = job["spec"]["template"]
        template.pop("apiVersion", None)
        template.pop("kind", None)
        template["metadata"] = {"labels": {RUN_LABEL: run}}
        with operating.PodTimeline(api, namespace) as timeline:
            k8s_client.BatchV1Api(api).create_namespaced_job(namespace, job)
            try:
                wait_for(
                    "all 300 pods released",
                    lambda: len(timeline.release_times()) >= 300,
                    timeout_s=180,
                )
            except AssertionError as exc:
                seen = timeline.first_seen()
                raise AssertionError(
                    f"{exc}: {len(timeline.events)} events, {len(seen)} pods seen, "
                    f"{sum(operating.gated(p) for p in seen.values())} first seen gated, "
                    f"{len(timeline.release_times())} seen released; operator log:\n"
                    f"{operator.log_tail(30)}"
                ) from exc
        first = timeline.first_seen()
        assert len(first) == 300
        for pod in first.values():
            assert operating.gated(pod), f"{pod['metadata']['name']} was created without the gate"
            assert pod["metadata"]["annotations"][names.POLICY_ANNOTATION] == run
            assert "affinity" not in pod["spec"]  # a pinning policy adds no affinity at creation
        for pod in operating.pods_in(core, namespace):
            # The release pinned every pod to the node whose budget it used, and it ran there.
            assert pin_of(pod) == pod["spec"]["nodeName"], pod["metadata"]["name"]
        times = sorted(timeline.release_times().values())
        # Over any window, releases <= burst + rate * window (+ slack for watch arrival jitter).
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                window = times[j] - start
                assert j - i + 1 <= burst + rate * (window + 0.5) + 2, (i, j, window)
        assert timeline.max_starting_per_node() <= per_node

    def test_a_closed_node_receives_no_paced_pod(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        api: k8s_client.ApiClient,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        nodes, run = guarded_nodes(
            cluster,
            operator,
            core,
            policies,
            prefix="closed",
            headrooms=[0, 64 * operating.GI, 64 * operating.GI],
            wait_ready=False,
        )
        bad = nodes.names[0]
        wait_for(
            "the low-headroom node labelled closed",
            lambda: core.read_node(bad).metadata.labels.get(names.INTAKE_LABEL) == "closed",
            timeout_s=30,
        )
        for i in range(30):
            core.create_namespaced_pod(namespace, labelled_pod(f"p{i}", run, nodes.selector))
        wait_for(
            "every pod bound",
            lambda: all(p["spec"].get("nodeName") for p in operating.pods_in(core, namespace)),
            timeout_s=60,
        )
        placed = {p["spec"]["nodeName"] for p in operating.pods_in(core, namespace)}
        assert bad not in placed and placed <= set(nodes.names[1:])

    def test_a_pod_pinned_to_a_node_that_closes_before_binding_still_binds_there(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        """A pin is a promise made while the node had room: a later close must not strand it.

        Were the intake requirement in the pod's affinity, the pod would sit Pending until the
        node reopened, with no gate left for maxGateSeconds to lift.
        """
        node, pod = held_and_pinned(cluster, operator, core, namespace, policies, prefix="pinclose")
        operating.publish(core, node, 0)
        wait_for(
            "node closed",
            lambda: core.read_node(node).metadata.labels.get(names.INTAKE_LABEL) == "closed",
            timeout_s=30,
        )
        lift_hold(core, node)
        wait_for("bound to its node", lambda: pod()["spec"].get("nodeName") == node, timeout_s=30)

    def test_a_pod_another_controller_still_gates_is_paced_only_once_that_gate_lifts(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        """While ``example.com/admission`` is on the pod it keeps burstguard's gate and no
        pin; once it lifts the pod is released and pinned to a node open *then*."""
        nodes, run = guarded_nodes(
            cluster,
            operator,
            core,
            policies,
            prefix="second",
            headrooms=[64 * operating.GI, 0],
            wait_ready=False,
        )
        first, later = nodes.names

        def intake(node: str) -> str | None:
            return str(core.read_node(node).metadata.labels.get(names.INTAKE_LABEL))

        wait_for(
            "first node open, second closed",
            lambda: intake(first) == "open" and intake(later) == "closed",
            timeout_s=30,
        )
        pod = labelled_pod("waiting", run, nodes.selector)
        pod["spec"]["schedulingGates"] = [{"name": OTHER_GATE}]
        core.create_namespaced_pod(namespace, pod)

        def read() -> dict[str, Any]:
            raw = core.read_namespaced_pod("waiting", namespace)
            return dict(core.api_client.sanitize_for_serialization(raw))

        gates = [g["name"] for g in read()["spec"]["schedulingGates"]]
        assert gates == [OTHER_GATE, names.SCHEDULING_GATE]  # the webhook still adds its gate
        time.sleep(3.0)  # 30 pacer ticks with an open node and budget to spare
        held = read()
        assert operating.gated(held) and pin_of(held) is None
        assert "affinity" not in held["spec"]
        # The nodes change while the other controller holds the pod.
        operating.publish(core, first, 0)
        operating.publish(core, later, 64 * operating.GI)
        wait_for(
            "first node closed, second open",
            lambda: intake(first) == "closed" and intake(later) == "open",
            timeout_s=30,
        )
        assert operating.gated(read())
        core.patch_namespaced_pod(
            "waiting",
            namespace,
            [
                {"op": "test", "path": "/spec/schedulingGates/0/name", "value": OTHER_GATE},
                {"op": "remove", "path": "/spec/schedulingGates/0"},
            ],
        )
        wait_for("released after the other gate", lambda: not operating.gated(read()), timeout_s=30)
        assert pin_of(read()) == later
        wait_for(
            "bound where it was pinned",
            lambda: read()["spec"].get("nodeName") == later,
            timeout_s=30,
        )


def held_and_pinned(
    cluster: ClusterFixture,
    operator: operating.OperatorProcess,
    core: k8s_client.CoreV1Api,
    namespace: str,
    policies: operating.Policies,
    *,
    prefix: str,
    pacing: dict[str, Any] | None = None,
) -> tuple[str, Callable[[], dict[str, Any]]]:
    """One open node and a pod ``held`` that burstguard released and pinned to it.

    The pod requests one unit of an extended resource no node has yet
    (``burstguard.test/hold``), so it stays unbound after burstguard's release and the test
    can change the node between the pin and the binding. (A second scheduling gate would
    not do: burstguard paces a pod only once its own gate is the last one, DESIGN §7.)
    """
    nodes, run = guarded_nodes(
        cluster,
        operator,
        core,
        policies,
        prefix=prefix,
        headrooms=[64 * operating.GI],
        pacing=pacing,
        wait_ready=False,
    )
    node = nodes.names[0]
    wait_for(
        "node open",
        lambda: core.read_node(node).metadata.labels.get(names.INTAKE_LABEL) == "open",
        timeout_s=30,
    )
    held = labelled_pod("held", run, nodes.selector)
    resources = held["spec"]["containers"][0]["resources"]
    resources["requests"][HOLD_RESOURCE] = "1"
    resources["limits"] = {HOLD_RESOURCE: "1"}  # extended resources: limits equal requests
    core.create_namespaced_pod(namespace, held)

    def pod() -> dict[str, Any]:
        raw = core.read_namespaced_pod("held", namespace)
        return dict(core.api_client.sanitize_for_serialization(raw))

    wait_for("burstguard's gate removed", lambda: not operating.gated(pod()), timeout_s=30)
    assert pin_of(pod()) == node
    return node, pod


HOLD_RESOURCE = "burstguard.test/hold"


def lift_hold(core: k8s_client.CoreV1Api, node: str) -> None:
    """Give ``node`` the extended resource the pod ``held`` waits for."""
    amount = {HOLD_RESOURCE: "1"}
    core.patch_node_status(node, {"status": {"capacity": amount, "allocatable": amount}})


class TestNeverStrand:
    def test_with_the_operator_stopped_new_pods_are_created_ungated(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        nodes, run = guarded_nodes(
            cluster, operator, core, policies, prefix="down", headrooms=[None], wait_ready=False
        )
        operator.stop()
        try:
            started = time.monotonic()
            pod = core.create_namespaced_pod(
                namespace, labelled_pod("escapee", run, nodes.selector)
            )
            took = time.monotonic() - started
            assert not pod.spec.scheduling_gates
            assert took < 3.0, f"pod create took {took:.1f}s with the webhook down"
            wait_for(
                "pod bound",
                lambda: core.read_namespaced_pod("escapee", namespace).spec.node_name,
                timeout_s=30,
            )
        finally:
            operator.start()

    def test_after_a_kill_mid_burst_and_a_restart_every_pod_is_released(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        nodes, run = guarded_nodes(
            cluster,
            operator,
            core,
            policies,
            prefix="kill",
            headrooms=[64 * operating.GI] * 4,
            pacing={"releasePerSecond": 5, "burst": 5},
        )
        for i in range(60):
            core.create_namespaced_pod(namespace, labelled_pod(f"p{i}", run, nodes.selector))

        def released() -> int:
            return sum(not operating.gated(p) for p in operating.pods_in(core, namespace))

        wait_for("some pods released", lambda: released() >= 10, timeout_s=30)
        operator.stop(kill=True)
        still_gated = 60 - released()
        assert still_gated > 0
        time.sleep(2)
        assert 60 - released() == still_gated  # nobody releases while the operator is down
        operator.start()
        wait_for("every pod released", lambda: released() == 60, timeout_s=60)

    def test_a_pod_gated_longer_than_max_gate_seconds_is_released_with_an_event(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        nodes, run = guarded_nodes(  # closed: the pacer releases nothing
            cluster,
            operator,
            core,
            policies,
            prefix="overdue",
            headrooms=[0],
            pacing={"maxGateSeconds": 3},
        )
        pod = core.create_namespaced_pod(namespace, labelled_pod("late", run, nodes.selector))
        assert pod.spec.scheduling_gates
        wait_for(
            "released",
            lambda: not core.read_namespaced_pod("late", namespace).spec.scheduling_gates,
            timeout_s=30,
        )
        wait_for(
            "a ReleasedOverdue event",
            lambda: [
                e
                for e in core.list_namespaced_event(namespace).items
                if e.reason == "ReleasedOverdue"
            ],
            timeout_s=20,
        )

    def test_a_pinned_pod_its_node_cannot_take_is_reported_after_max_gate_seconds(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        node, pod = held_and_pinned(
            cluster,
            operator,
            core,
            namespace,
            policies,
            prefix="unbound",
            pacing={"maxGateSeconds": 3},
        )
        taint = {"key": "burstguard.test/full", "effect": "NoSchedule"}
        core.patch_node(node, {"spec": {"taints": [taint]}})
        lift_hold(core, node)
        wait_for(
            "a PinnedUnbound event",
            lambda: [
                e
                for e in core.list_namespaced_event(namespace).items
                if e.reason == "PinnedUnbound" and node in (e.message or "")
            ],
            timeout_s=30,
        )
        assert not pod()["spec"].get("nodeName")
        assert "burstguard_pinned_unbound_pods{" in operator.metrics()

    def test_release_all_removes_every_gate_without_a_running_operator(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        nodes, run = guarded_nodes(  # closed: nothing is paced out
            cluster, operator, core, policies, prefix="uninstall", headrooms=[0]
        )
        for i in range(5):
            core.create_namespaced_pod(namespace, labelled_pod(f"p{i}", run, nodes.selector))
        assert all(operating.gated(p) for p in operating.pods_in(core, namespace))
        operator.stop()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "burstguard.cli.main",
                    "release",
                    "--all",
                    "--policy",
                    run,
                    "-o",
                    "json",
                ],
                env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["released"] == 5
            assert not any(operating.gated(p) for p in operating.pods_in(core, namespace))
        finally:
            operator.start()


class TestDryRun:
    def test_a_dry_run_policy_changes_nothing_and_reports_what_it_would_have_done(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        nodes, run = guarded_nodes(  # the second node would have been closed
            cluster,
            operator,
            core,
            policies,
            prefix="dry",
            headrooms=[64 * operating.GI, 0],
            pacing={"releasePerSecond": 1, "burst": 1},
            mode="DryRun",
        )
        for i in range(10):
            core.create_namespaced_pod(namespace, labelled_pod(f"p{i}", run, nodes.selector))
        wait_for(
            "every pod bound",
            lambda: all(p["spec"].get("nodeName") for p in operating.pods_in(core, namespace)),
            timeout_s=30,
        )
        for pod in operating.pods_in(core, namespace):
            assert not operating.gated(pod)
            assert names.POLICY_ANNOTATION not in (pod["metadata"].get("annotations") or {})
        status = wait_for(
            "wouldHave in status",
            lambda: status_with_delays(policies, run, 5),
            timeout_s=30,
        )
        would = status["wouldHave"]
        assert would["gatedPods"] == 10
        assert would["maxDelaySeconds"] >= 3
        assert would["closedNodes"] >= 1
        assert any(c["node"] == nodes.names[1] for c in would["recentClosures"])
        for n in nodes.names:
            assert names.INTAKE_LABEL not in (core.read_node(n).metadata.labels or {})
            assert names.PREPARE_REQUEST_ANNOTATION not in (
                core.read_node(n).metadata.annotations or {}
            )


class TestMalformedPolicies:
    @pytest.mark.parametrize(
        "spec",
        [
            pytest.param({"mode": "Sometimes"}, id="unknown-mode"),
            pytest.param({"pacing": {"burst": 0}}, id="burst-below-range"),
            pytest.param({"mode": "Enforce"}, id="enforce-without-selection-cel"),
            pytest.param(
                {"pacing": {"releasePerSecond": 1000, "burst": 10}}, id="burst-under-one-tick-cel"
            ),
            pytest.param(
                {"nodes": {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
                id="in-without-values-cel",
            ),
            pytest.param({"headroom": {"reopenHold": "soon"}}, id="bad-duration"),
            pytest.param({"preparation": {"cooldown": "0s"}}, id="cooldown-under-1s-cel"),
            pytest.param(
                {"pacing": {"releasePerSecond": 0.1, "burst": 1, "maxGateSeconds": 5}},
                id="max-gate-under-one-release-interval-cel",
            ),
        ],
    )
    def test_the_api_server_rejects_what_the_schema_forbids(
        self,
        *,
        operator: operating.OperatorProcess,
        policies: operating.Policies,
        spec: dict[str, Any],
    ) -> None:
        body = {
            "apiVersion": f"{names.GROUP}/{names.VERSION}",
            "kind": names.POLICY_KIND,
            "metadata": {"name": operating.unique("bad")},
            "spec": spec,
        }
        with pytest.raises(k8s_client.ApiException) as info:
            policies.create(body)
        assert info.value.status == 422

    def test_what_the_schema_cannot_catch_is_reported_ready_false(
        self, operator: operating.OperatorProcess, policies: operating.Policies
    ) -> None:
        ensure_running(operator)
        name = operating.unique("invalid")
        body = operating.burst_policy(
            name, mode="DryRun", pod_labels={"-bad-key-": "x"}, node_labels={"a": "b"}
        )
        policies.create(body)
        ready = wait_for(
            "Ready=False",
            lambda: not_ready(policies, name),
            timeout_s=30,
        )
        assert ready["reason"] == "InvalidSpec" and "podSelector" in ready["message"]

    def test_a_policy_whose_nodes_could_never_reopen_shows_the_reason_in_kubectl_get(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        policies: operating.Policies,
    ) -> None:
        """Each value is in range; together with 16Gi nodes, a closed node never reopens."""
        ensure_running(operator)
        nodes = cluster.create_nodes(2, memory="16Gi")
        name = operating.unique("noreopen")
        body = operating.burst_policy(
            name,
            pod_labels={RUN_LABEL: name},
            node_labels=nodes.selector,
            headroom={"closeBelow": "15Gi", "reopenMargin": 1.5},
        )
        policies.create(body)
        ready = wait_for("Ready=False", lambda: not_ready(policies, name), timeout_s=30)
        assert ready["reason"] == "CannotReopen", ready
        assert "2 of 2 guarded nodes" in ready["message"]
        shown = subprocess.run(
            [str(cluster.control_plane.kubectl), "get", "burstpolicies", name],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "REASON" in shown.splitlines()[0] and "CannotReopen" in shown.splitlines()[1]

    def test_the_younger_of_two_policies_guarding_the_same_nodes_reports_a_conflict(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        policies: operating.Policies,
    ) -> None:
        ensure_running(operator)
        nodes = cluster.create_nodes(1)
        old, young = operating.unique("old"), operating.unique("young")
        policies.create(
            operating.burst_policy(
                old, mode="DryRun", pod_labels={RUN_LABEL: old}, node_labels=nodes.selector
            )
        )
        time.sleep(1.1)  # creation timestamps have one-second resolution
        policies.create(
            operating.burst_policy(
                young, mode="DryRun", pod_labels={RUN_LABEL: young}, node_labels=nodes.selector
            )
        )
        ready = wait_for(
            "conflict",
            lambda: not_ready(policies, young),
            timeout_s=30,
        )
        assert ready["reason"] == "Conflict", ready
        assert (policies.ready(old) or {}).get("status") == "True"


def test_the_operator_exports_its_metrics(operator: operating.OperatorProcess) -> None:
    ensure_running(operator)
    text = operator.metrics()
    for family in (
        "burstguard_webhook_requests_total",
        "burstguard_gated_pods",
        "burstguard_pod_releases_total",
    ):
        assert family in text or family.removesuffix("_total") in text


class TestForecast:
    def test_a_cronjobs_nodes_are_asked_to_prepare_lead_time_before_it_fires(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        api: k8s_client.ApiClient,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        """An Enforce policy with leadTime 20s selects a CronJob of 4 pods x 1 GiB that fires
        at the next whole minute at least 35 s away (written in Asia/Kolkata time, UTC+05:30).
        Each of the 2 nodes (1 GiB headroom) must get a request for its 2 GiB share less its
        headroom, written no later than 15 s (leadTime - 5 s) before the fire."""
        ensure_running(operator)
        lead_s = 20.0
        nodes = cluster.create_nodes(2)
        for name in nodes.names:
            operating.publish(core, name, operating.GI)
        run = operating.unique("cron")
        body = operating.burst_policy(run, pod_labels={RUN_LABEL: run}, node_labels=nodes.selector)
        body["spec"]["preparation"] = {"leadTime": f"{lead_s:g}s", "cooldown": "1s"}
        policies.create(body)
        wait_for(
            "policy ready",
            lambda: (policies.ready(run) or {}).get("status") == "True",
            timeout_s=30,
        )
        fire = (int(time.time() + 35) // 60 + 1) * 60
        local = datetime.datetime.fromtimestamp(fire, tz=zoneinfo.ZoneInfo("Asia/Kolkata"))
        job = JobBuilder(run, 4).node_selector(nodes.selector).build()
        template = job["spec"]["template"]
        template.pop("apiVersion", None)
        template.pop("kind", None)
        template["metadata"] = {"labels": {RUN_LABEL: run}}
        template["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Gi"
        cronjob = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly"},
            "spec": {
                "schedule": f"{local.minute} {local.hour} * * *",
                "timeZone": "Asia/Kolkata",
                "jobTemplate": {"spec": job["spec"]},
            },
        }
        k8s_client.BatchV1Api(api).create_namespaced_cron_job(namespace, cronjob)

        def requests() -> dict[str, tuple[float, preparation.PrepareRequest]] | None:
            out = {}
            for name in nodes.names:
                text = (core.read_node(name).metadata.annotations or {}).get(
                    names.PREPARE_REQUEST_ANNOTATION
                )
                if text and (req := preparation.decode(text)).policy == run:
                    out[name] = (time.time(), req)
            return out if len(out) == len(nodes.names) else None

        seen = wait_for("both nodes asked to prepare", requests, timeout_s=fire - time.time())
        for name, (arrived, req) in seen.items():
            print(
                f"{name}: request written {fire - req.requested_at:.1f}s and seen "
                f"{fire - arrived:.1f}s before the fire (leadTime {lead_s:g}s)"
            )
            assert arrived <= fire - (lead_s - 5), (name, fire - arrived)
            assert req.requested_at >= fire - lead_s - 2, (name, fire - req.requested_at)
            assert req.bytes_wanted == 2 * operating.GI - operating.GI, req
            assert "CronJob" in req.reason and "nightly" in req.reason
        forecast = wait_for(
            "the prepared burst in the status",
            lambda: (
                f
                if (f := (policies.get(run).get("status") or {}).get("forecast") or {}).get(
                    "preparedNodes"
                )
                else None
            ),
            timeout_s=10,
        )
        assert forecast["nextPods"] == 4 and forecast["nextMemoryBytes"] == 4 * operating.GI
        assert forecast["preparedNodes"] == 2 and forecast["preparedBytes"] == 2 * operating.GI

        def explained() -> bool:
            reasons = {
                (e.involved_object.name, e.reason)
                for e in core.list_namespaced_event("default").items
                if e.involved_object.kind == "Node"
            }
            return {(n, "PreparedAhead") for n in nodes.names} <= reasons

        wait_for("a PreparedAhead Event on each node", explained, timeout_s=10)


KUEUE_GATE = "kueue.x-k8s.io/admission"
KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"


@pytest.fixture(scope="module")
def kueue(
    cluster: ClusterFixture,
    control_plane_binaries: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[kueueing.KueueProcess]:
    if not kueueing.built():
        why = f"Kueue not built at {kueueing.install_dir()} (tests/cluster/kueue/build.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have Kueue built: {why}")
        pytest.skip(why)
    proc = kueueing.KueueProcess(
        cluster.kubeconfig_path,
        control_plane_binaries.kubectl,
        tmp_path_factory.mktemp("kueue"),
        operating.free_port(),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class TestKueue:
    def test_with_the_real_kueue_pods_are_paced_after_admission_and_pending_ones_forecast(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        kueue: kueueing.KueueProcess,
        api: k8s_client.ApiClient,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        """A 1 GiB pod queued to a ClusterQueue with 512 MiB of memory (Kueue's gate) is
        forecast as a Workload pending on quota, and keeps both gates and no pin while Kueue
        holds it. Once the quota is raised Kueue admits it and a Job of 3 x 1 GiB pods (which
        exist only after admission): burstguard releases and pins them all, the pod only
        after Kueue lifted its gate."""
        nodes, run = guarded_nodes(
            cluster, operator, core, policies, prefix="kueue", headrooms=[64 * operating.GI] * 2
        )
        custom = k8s_client.CustomObjectsApi(api)
        flavor, queue = f"{run}-flavor", f"{run}-cq"
        custom.create_cluster_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, "resourceflavors", {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}", "kind": "ResourceFlavor",
                "metadata": {"name": flavor},
            },
        )  # fmt: skip
        custom.create_cluster_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}", "kind": "ClusterQueue",
                "metadata": {"name": queue},
                "spec": {"namespaceSelector": {}, "resourceGroups": quota(flavor, "512Mi")},
            },
        )  # fmt: skip
        try:
            custom.create_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, namespace, "localqueues", {
                    "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}", "kind": "LocalQueue",
                    "metadata": {"name": "lq"}, "spec": {"clusterQueue": queue},
                },
            )  # fmt: skip
            self._run(
                api=api, core=core, custom=custom, namespace=namespace, queue=queue,
                flavor=flavor, node_names=nodes.names, selector=nodes.selector, run=run,
                kueue=kueue,
            )  # fmt: skip
        finally:
            for plural, name in (("clusterqueues", queue), ("resourceflavors", flavor)):
                with contextlib.suppress(k8s_client.ApiException):
                    custom.delete_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, plural, name)

    def _run(
        self,
        *,
        api: k8s_client.ApiClient,
        core: k8s_client.CoreV1Api,
        custom: k8s_client.CustomObjectsApi,
        namespace: str,
        queue: str,
        flavor: str,
        node_names: Sequence[str],
        selector: dict[str, str],
        run: str,
        kueue: kueueing.KueueProcess,
    ) -> None:
        queue_label = {"kueue.x-k8s.io/queue-name": "lq"}

        def workloads() -> list[dict[str, Any]]:
            listed = custom.list_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, namespace, "workloads"
            )
            return list(listed.get("items") or [])

        def forecast() -> dict[str, Any] | None:
            f = (policies_get(api, run).get("status") or {}).get("forecast") or {}
            return f if str(f.get("nextSource", "")).startswith("Workload ") else None

        with operating.PodTimeline(api, namespace) as timeline:
            waiting = labelled_pod("waiting", run, selector)
            waiting["metadata"]["labels"].update(queue_label, **{"kueue.x-k8s.io/managed": "true"})
            waiting["spec"]["schedulingGates"] = [{"name": KUEUE_GATE}]
            waiting["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Gi"
            core.create_namespaced_pod(namespace, waiting)
            try:
                seen = wait_for("the pending pod's Workload forecast", forecast, timeout_s=30)
            except AssertionError as exc:
                status = policies_get(api, run).get("status") or {}
                states = [(w["metadata"]["name"], w.get("status")) for w in workloads()]
                raise AssertionError(
                    f"{exc}: status {status}; workloads {states}; kueue:\n{kueue.log_tail(5)}"
                ) from exc
            assert seen["nextPods"] == 1 and seen["nextMemoryBytes"] == operating.GI
            (pending,) = workloads()
            assert not (pending.get("status") or {}).get("admission")  # pending on quota
            pod = core.api_client.sanitize_for_serialization(
                core.read_namespaced_pod("waiting", namespace)
            )
            gates = [g["name"] for g in pod["spec"]["schedulingGates"]]
            assert gates == [KUEUE_GATE, names.SCHEDULING_GATE] and pin_of(pod) is None
            custom.patch_cluster_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", queue,
                {"spec": {"resourceGroups": quota(flavor, "4Gi")}},
            )  # fmt: skip
            job = JobBuilder("first", 3).node_selector(selector).build()
            job["metadata"]["labels"] = dict(queue_label)
            job["spec"]["suspend"] = True  # what Kueue's webhook would set
            template = job["spec"]["template"]
            template.pop("apiVersion", None)
            template.pop("kind", None)
            template["metadata"] = {"labels": {RUN_LABEL: run}}
            template["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Gi"
            k8s_client.BatchV1Api(api).create_namespaced_job(namespace, job)
            wait_for(
                "the pod and the Job's 3 pods admitted by Kueue and released by burstguard",
                lambda: len(timeline.release_times()) >= 4,
                timeout_s=90,
            )
        first = timeline.first_seen()
        assert len(first) == 4 and all(operating.gated(p) for p in first.values())
        released = core.api_client.sanitize_for_serialization(
            core.read_namespaced_pod("waiting", namespace)
        )
        assert not released["spec"].get("schedulingGates")
        assert pin_of(released) in node_names
        # Kueue lifted its gate before burstguard released the pod: admission came first.
        kueue_lifted = min(
            t
            for t, _, obj in timeline.events
            if obj["metadata"]["name"] == "waiting"
            and KUEUE_GATE not in [g["name"] for g in obj["spec"].get("schedulingGates") or []]
        )
        assert kueue_lifted <= timeline.release_times()["waiting"]


def quota(flavor: str, memory: str) -> list[dict[str, Any]]:
    """One resource group of a ClusterQueue: 100 CPUs and ``memory``."""
    resources = [{"name": "cpu", "nominalQuota": "100"}, {"name": "memory", "nominalQuota": memory}]
    return [
        {
            "coveredResources": ["cpu", "memory"],
            "flavors": [{"name": flavor, "resources": resources}],
        }
    ]


def policies_get(api: k8s_client.ApiClient, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = k8s_client.CustomObjectsApi(api).get_cluster_custom_object(
        names.GROUP, names.VERSION, names.POLICY_PLURAL, name
    )
    return obj


def forged_pod(name: str, run: str, policy: str) -> dict[str, Any]:
    """A pod that put burstguard's gate and ``policy``'s annotation on itself.

    It asks for a node label no node has, so once released it stays unbound: a pacer that
    took it for its own would count it in flight and pin or budget for it.
    """
    pod = PodBuilder(name).gates(names.SCHEDULING_GATE).node_selector({RUN_LABEL: "nowhere"})
    body = pod.labels(**{RUN_LABEL: run}).build()
    body["metadata"]["annotations"] = {names.POLICY_ANNOTATION: policy}
    return body


def janitor_event(core: k8s_client.CoreV1Api, namespace: str, pod: str) -> Any:
    """The Event the janitor posts when it lifts a gate it does not pace (None until then)."""
    for event in core.list_namespaced_event(namespace).items:
        if event.involved_object.name == pod and event.reason in (
            "ReleasedNotSelected",
            "ReleasedPolicyGone",
        ):
            return event
    return None


@contextlib.contextmanager
def other_namespace(core: k8s_client.CoreV1Api) -> Iterator[str]:
    name = operating.unique("foreign")
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


class TestForgedGates:
    """A pod can write burstguard's gate and any policy's name on itself; only the webhook's
    own selection makes it a policy's pod."""

    def test_a_pod_in_a_namespace_no_policy_selects_is_not_paced_by_the_policy_it_names(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        ensure_running(operator)
        nodes = cluster.create_nodes(1)
        operating.publish(core, nodes.names[0], 64 * operating.GI)
        victim = operating.unique("victim")
        body = operating.burst_policy(
            victim,
            pod_labels={RUN_LABEL: victim},
            node_labels=nodes.selector,
            pacing={"maxStartingPerNode": 1},
        )
        body["spec"]["pods"]["namespaceSelector"] = {
            "matchLabels": {"kubernetes.io/metadata.name": namespace}
        }
        policies.create(body)
        wait_for("policy ready", lambda: (policies.ready(victim) or {}).get("status") == "True")
        with other_namespace(core) as foreign:
            made = core.create_namespaced_pod(foreign, forged_pod("forged", victim, victim))
            assert [g.name for g in made.spec.scheduling_gates] == [names.SCHEDULING_GATE]
            event = wait_for(
                "the janitor's Event on the forged pod",
                lambda: janitor_event(core, foreign, "forged"),
                timeout_s=30,
            )
            assert event.reason == "ReleasedNotSelected"
            assert f"policy {victim} does not select it" in event.message
            forged = core.api_client.sanitize_for_serialization(
                core.read_namespaced_pod("forged", foreign)
            )
            assert not operating.gated(forged)
            assert pin_of(forged) is None, "the victim's pacer pinned a pod it does not select"
            assert not forged["spec"].get("nodeName")
            # The forged pod now waits unbound with the victim's annotation. Were it in the
            # victim's flight it would hold the node's one start slot: the victim's own pod
            # is released and pinned at once instead.
            mine = core.create_namespaced_pod(
                namespace, labelled_pod("mine", victim, nodes.selector)
            )
            assert mine.spec.scheduling_gates
            wait_for(
                "the victim's own pod released and pinned to its node",
                lambda: (
                    pin_of(
                        core.api_client.sanitize_for_serialization(
                            core.read_namespaced_pod("mine", namespace)
                        )
                    )
                    == nodes.names[0]
                ),
                timeout_s=30,
            )
            status = wait_for(
                "the victim's status counting its release",
                lambda: (policies.get(victim).get("status") or {}).get("releasedTotal"),
                timeout_s=30,
            )
            assert status == 1
            reasons = {
                e.reason
                for e in core.list_namespaced_event(foreign).items
                if e.involved_object.name == "forged"
                and e.reporting_component == "burstguard-operator"
            }
            assert reasons == {"ReleasedNotSelected"}  # no Released by the victim's pacer

    def test_a_pod_naming_a_dry_run_policy_is_released_by_the_janitor_unpinned(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        namespace: str,
        policies: operating.Policies,
    ) -> None:
        _nodes, run = guarded_nodes(
            cluster,
            operator,
            core,
            policies,
            prefix="dryforged",
            headrooms=[64 * operating.GI],
            mode="DryRun",
        )
        core.create_namespaced_pod(namespace, forged_pod("forged", run, run))
        event = wait_for(
            "the janitor's Event", lambda: janitor_event(core, namespace, "forged"), timeout_s=30
        )
        assert event.reason == "ReleasedPolicyGone"
        assert f"policy {run} is DryRun" in event.message
        pod = core.api_client.sanitize_for_serialization(
            core.read_namespaced_pod("forged", namespace)
        )
        assert not operating.gated(pod)
        assert pin_of(pod) is None

    def test_a_gate_added_in_an_excluded_namespace_is_released_by_the_janitor(
        self,
        *,
        cluster: ClusterFixture,
        operator: operating.OperatorProcess,
        core: k8s_client.CoreV1Api,
        policies: operating.Policies,
    ) -> None:
        # The policy selects the pod's labels in every namespace, but kube-system is excluded.
        _nodes, run = guarded_nodes(
            cluster, operator, core, policies, prefix="excluded", headrooms=[64 * operating.GI]
        )
        name = operating.unique("forged")
        core.create_namespaced_pod("kube-system", forged_pod(name, run, run))
        try:
            event = wait_for(
                "the janitor's Event",
                lambda: janitor_event(core, "kube-system", name),
                timeout_s=30,
            )
            assert event.reason == "ReleasedNotSelected"
            assert "namespace kube-system is excluded" in event.message
            pod = core.api_client.sanitize_for_serialization(
                core.read_namespaced_pod(name, "kube-system")
            )
            assert not operating.gated(pod)
            assert pin_of(pod) is None
            assert (policies.get(run).get("status") or {}).get("releasedTotal", 0) == 0
        finally:
            core.delete_namespaced_pod(name, "kube-system", grace_period_seconds=0)


def test_the_webhook_port_answers_only_tls(operator: operating.OperatorProcess) -> None:
    ensure_running(operator)
    context = ssl.create_default_context(cafile=str(operator.workdir / "certs" / "ca.pem"))
    url = f"127.0.0.1:{operator.webhook_port}/healthz"
    with urllib.request.urlopen(f"https://{url}", timeout=10, context=context) as answer:
        assert answer.status == 200
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{url}", timeout=10).close()
