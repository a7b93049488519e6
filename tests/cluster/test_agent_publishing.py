"""The agent against the real local control plane: publishing, preparation acknowledgement,
and the admission policy that keeps it to its own Node."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import utils as k8s_utils

from burstguard.agent import sampling
from burstguard.api import names, nodesummary, preparationack
from burstguard.api import preparation as request_api
from burstguard.k8s import nodes, nodetypes
from tests.conftest import ClusterFixture

DEPLOY = pathlib.Path(__file__).parent.parent.parent / "deploy" / "agent"
AGENT_SA = "burstguard-agent"


def wait_for(check: Any, timeout_s: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def admin_core(cluster: ClusterFixture) -> k8s_client.CoreV1Api:
    return k8s_client.CoreV1Api(cluster.api_client())


def node_annotations(cluster: ClusterFixture, name: str) -> dict[str, str]:
    return dict(admin_core(cluster).read_node(name).metadata.annotations or {})


@pytest.fixture
def agent_identity(cluster: ClusterFixture, namespace: str) -> Iterator[tuple[str, str]]:
    """RBAC and the own-node policy applied; returns (namespace, service account)."""
    api = cluster.api_client()
    docs = []
    for doc in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()):
        if doc["kind"] == "ServiceAccount":
            doc["metadata"]["namespace"] = namespace
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            doc["subjects"][0]["namespace"] = namespace
            doc["metadata"]["name"] = f"burstguard-agent-{namespace}"
        docs.append(doc)
    docs += list(yaml.safe_load_all((DEPLOY / "node-policy.yaml").read_text()))
    created = []
    for doc in docs:
        try:
            k8s_utils.create_from_dict(api, doc, namespace=namespace)
            created.append(doc)
        except k8s_utils.FailToCreateError as exc:
            if not all(getattr(e, "status", 0) == 409 for e in exc.api_exceptions):
                raise
    yield namespace, AGENT_SA
    rbac = k8s_client.RbacAuthorizationV1Api(api)
    rbac.delete_cluster_role_binding(f"burstguard-agent-{namespace}")
    rbac.delete_namespaced_role_binding(f"burstguard-agent-{namespace}", "default")


def pod_bound_token(cluster: ClusterFixture, namespace: str, sa: str, node: str) -> str:
    """A service-account token bound to a pod on ``node`` (it carries the node-name claim)."""
    core = admin_core(cluster)
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": f"agent-{node}"[:63]},
            "spec": {
                "nodeName": node,
                "serviceAccountName": sa,
                "containers": [{"name": "agent", "image": "burstguard:test"}],
                "tolerations": [{"operator": "Exists"}],
            },
        },
    )
    request = core.create_namespaced_service_account_token(
        sa,
        namespace,
        {
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                },
            }
        },
    )
    return str(request.status.token)


def test_the_agent_publishes_its_summary_and_condition_on_a_kwok_node(
    cluster: ClusterFixture, agent_identity: tuple[str, str]
) -> None:
    namespace, sa = agent_identity
    (node,) = cluster.create_nodes(1).names
    token = pod_bound_token(cluster, namespace, sa, node)
    writer = nodes.NodeWriter(cluster.token_client(token), node)
    agent = sampling.Agent(sampling.Config(node_name=node, bpf=False), writer=writer)
    stop = threading.Event()
    watcher = threading.Thread(
        target=writer.watch_annotations, args=(agent.on_annotations, stop), daemon=True
    )
    watcher.start()
    try:
        agent.tick()
        time.sleep(0.25)
        agent.tick()
        text = wait_for(
            lambda: node_annotations(cluster, node).get(names.SUMMARY_ANNOTATION), what="summary"
        )
        summary = nodesummary.decode(text)
        assert summary.state in ("Open", "Closed")
        assert summary.kernel_release and summary.signal_source == "procfs"

        def condition() -> dict[str, Any] | None:
            status = admin_core(cluster).read_node_status(node).status
            found = [c for c in status.conditions or [] if c.type == names.HEADROOM_CONDITION]
            return found[0].to_dict() if found else None

        cond = wait_for(condition, what="BurstguardHeadroom condition")
        assert cond["status"] == ("True" if summary.state == "Open" else "False")

        request = request_api.PrepareRequest("cluster-req-1", 64 * 2**20, time.time())
        admin_core(cluster).patch_node(
            node,
            {
                "metadata": {
                    "annotations": {names.PREPARE_REQUEST_ANNOTATION: request_api.encode(request)}
                }
            },
        )
        wait_for(lambda: agent._request_text is not None, what="request seen by the watch")
        ack = agent.prepare_step()
        assert ack is not None and ack.dry_run and ack.id == "cluster-req-1"
        ack_text = wait_for(
            lambda: node_annotations(cluster, node).get(names.PREPARE_ACK_ANNOTATION), what="ack"
        )
        assert preparationack.decode(ack_text).id == "cluster-req-1"
    finally:
        stop.set()
        agent.stop()


def test_the_admission_policy_rejects_a_patch_of_another_node_by_the_agent(
    cluster: ClusterFixture, agent_identity: tuple[str, str]
) -> None:
    namespace, sa = agent_identity
    own, other = cluster.create_nodes(2).names
    token = pod_bound_token(cluster, namespace, sa, own)
    api = cluster.token_client(token)
    mine = nodes.NodeWriter(api, own)
    theirs = nodes.NodeWriter(api, other)

    def denied(key: str) -> nodetypes.NodeApiError | None:
        try:
            theirs.set_annotations({key: "{}"})
        except nodetypes.NodeApiError as exc:
            return exc
        return None

    # a freshly created policy takes a moment to be enforced: probe with a test annotation
    wait_for(lambda: denied("burstguard.io/probe"), what="the policy to deny the other node")
    error = denied(names.SUMMARY_ANNOTATION)
    assert error is not None and error.status == 403
    assert "may change only the Node its pod runs on" in str(error)
    mine.set_annotations({names.SUMMARY_ANNOTATION: "{}"})  # its own node is fine
    assert node_annotations(cluster, own)[names.SUMMARY_ANNOTATION] == "{}"
    assert names.SUMMARY_ANNOTATION not in node_annotations(cluster, other)
