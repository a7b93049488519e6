"""The local control plane does what burstguard's cluster tests rely on.

kwok nodes become schedulable, kube-scheduler binds pods to them and kwok runs and completes
them; scheduling gates and node affinity behave as in a real cluster; service-account tokens
bound to a pod name its node; the apiserver calls a webhook on 127.0.0.1 over TLS.
"""

from __future__ import annotations

import base64
import itertools
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.rest import ApiException

from burstguard.api import names
from burstguard.devcluster import cluster as devcluster
from tests.cluster.builders import JobBuilder, PodBuilder, wait_for
from tests.conftest import ClusterFixture


@pytest.fixture
def core(cluster: ClusterFixture) -> Iterator[k8s_client.CoreV1Api]:
    with cluster.api_client() as api:
        yield k8s_client.CoreV1Api(api)


def _condition(obj: Any, kind: str) -> Any:
    return next((c for c in obj.status.conditions or [] if c.type == kind), None)


class TestKwokNodes:
    def test_created_nodes_are_ready_with_the_capacity_they_were_given(
        self, cluster: ClusterFixture, core: k8s_client.CoreV1Api
    ) -> None:
        group = cluster.create_nodes(2, cpu="8", memory="32Gi", pods=50)
        for name in group.names:
            node = core.read_node(name)
            assert _condition(node, "Ready").status == "True"
            assert node.status.allocatable["cpu"] == "8"
            assert node.status.allocatable["memory"] == "32Gi"
            assert node.status.allocatable["pods"] == "50"
            assert node.metadata.annotations[devcluster.KWOK_ANNOTATION] == "fake"
            assert not node.spec.taints

    def test_kwok_keeps_a_heartbeat_lease_for_each_node(
        self, cluster: ClusterFixture, cluster_api: k8s_client.ApiClient
    ) -> None:
        group = cluster.create_nodes(1)
        leases = k8s_client.CoordinationV1Api(cluster_api)
        lease = wait_for(
            "the node lease",
            lambda: _lease(leases, group.names[0]),
            timeout_s=30,
        )
        assert lease.spec.renew_time is not None
        assert lease.spec.lease_duration_seconds == 40

    def test_tainted_nodes_carry_the_kwok_taint(
        self, cluster: ClusterFixture, core: k8s_client.CoreV1Api
    ) -> None:
        group = cluster.create_nodes(1, taint=True)
        taints = core.read_node(group.names[0]).spec.taints
        assert [(t.key, t.value, t.effect) for t in taints] == [
            (devcluster.KWOK_ANNOTATION, "fake", "NoSchedule")
        ]


@pytest.fixture
def cluster_api(cluster: ClusterFixture) -> Iterator[k8s_client.ApiClient]:
    with cluster.api_client() as api:
        yield api


def _lease(leases: k8s_client.CoordinationV1Api, name: str) -> Any:
    try:
        return leases.read_namespaced_lease(name, "kube-node-lease")
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


class TestScheduling:
    def test_a_job_of_50_pods_is_scheduled_onto_kwok_nodes_and_completes(
        self, cluster: ClusterFixture, cluster_api: k8s_client.ApiClient, namespace: str
    ) -> None:
        group = cluster.create_nodes(3)
        batch = k8s_client.BatchV1Api(cluster_api)
        core = k8s_client.CoreV1Api(cluster_api)
        batch.create_namespaced_job(
            namespace, JobBuilder("burst", pods=50).node_selector(group.selector).build()
        )

        def complete() -> Any:
            job = batch.read_namespaced_job_status("burst", namespace)
            failed = _condition(job, "Failed")
            assert failed is None or failed.status != "True", failed
            done = _condition(job, "Complete")
            return job if done is not None and done.status == "True" else None

        job = wait_for("the Job to complete", complete, timeout_s=180, every_s=0.5)
        assert job.status.succeeded == 50
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=burst").items
        assert len(pods) == 50
        assert {p.status.phase for p in pods} == {"Succeeded"}
        assert {p.spec.node_name for p in pods} <= set(group.names)

    def test_a_gated_pod_stays_scheduling_gated_until_its_gate_is_removed(
        self, cluster: ClusterFixture, core: k8s_client.CoreV1Api, namespace: str
    ) -> None:
        group = cluster.create_nodes(1)
        pod = PodBuilder("gated").node_selector(group.selector).gates(names.SCHEDULING_GATE)
        core.create_namespaced_pod(namespace, pod.build())

        time.sleep(2.0)  # the scheduler binds an ungated pod to a ready node within ~100 ms
        gated = core.read_namespaced_pod("gated", namespace)
        assert gated.spec.node_name is None
        scheduled = _condition(gated, "PodScheduled")
        assert (scheduled.status, scheduled.reason) == ("False", "SchedulingGated")

        core.patch_namespaced_pod(
            "gated",
            namespace,
            [
                {
                    "op": "test",
                    "path": "/spec/schedulingGates/0/name",
                    "value": names.SCHEDULING_GATE,
                },
                {"op": "remove", "path": "/spec/schedulingGates/0"},
            ],
        )
        running = wait_for(
            "the ungated pod to run",
            lambda: _phase(core, "gated", namespace, "Running"),
            timeout_s=30,
        )
        assert running.spec.node_name == group.names[0]

    def test_required_node_affinity_not_in_keeps_pods_off_labelled_nodes(
        self, cluster: ClusterFixture, core: k8s_client.CoreV1Api, namespace: str
    ) -> None:
        case = {"burstguard.test/case": namespace}
        closed = cluster.create_nodes(2, labels={**case, names.INTAKE_LABEL: names.INTAKE_CLOSED})
        unlabelled = cluster.create_nodes(1, labels=case)
        for i in range(10):
            pod = (
                PodBuilder(f"paced-{i}")
                .node_selector(case)
                .required_node_affinity(names.INTAKE_LABEL, "NotIn", names.INTAKE_CLOSED)
            )
            core.create_namespaced_pod(namespace, pod.build())
        pods = wait_for(
            "10 running pods",
            lambda: _all_running(core, namespace, 10),
            timeout_s=60,
        )
        assert {p.spec.node_name for p in pods} == set(unlabelled.names)

        only_closed = (
            PodBuilder("nowhere-to-go")
            .node_selector(closed.selector)
            .required_node_affinity(names.INTAKE_LABEL, "NotIn", names.INTAKE_CLOSED)
        )
        core.create_namespaced_pod(namespace, only_closed.build())
        pending = wait_for(
            "the scheduler to give up on the pod",
            lambda: _unschedulable(core, "nowhere-to-go", namespace),
            timeout_s=30,
        )
        assert pending.spec.node_name is None


def _phase(core: k8s_client.CoreV1Api, name: str, namespace: str, phase: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == phase else None


def _all_running(core: k8s_client.CoreV1Api, namespace: str, count: int) -> Any:
    pods = core.list_namespaced_pod(namespace).items
    running = [p for p in pods if p.status.phase == "Running"]
    return running if len(running) == count else None


def _unschedulable(core: k8s_client.CoreV1Api, name: str, namespace: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    scheduled = _condition(pod, "PodScheduled")
    return pod if scheduled is not None and scheduled.reason == "Unschedulable" else None


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _token(core: k8s_client.CoreV1Api, namespace: str, bound_to: dict[str, str]) -> str:
    """A TokenRequest for ServiceAccount ``agent``, bound to ``bound_to`` (kind, name, uid)."""
    request = {
        "spec": {
            "audiences": [devcluster.SERVICE_ACCOUNT_ISSUER],
            "expirationSeconds": 600,
            "boundObjectRef": {"apiVersion": "v1", **bound_to},
        }
    }
    return str(
        core.create_namespaced_service_account_token("agent", namespace, request).status.token
    )


def _who_am_i(cluster: ClusterFixture, token: str) -> Any:
    """The apiserver's view of ``token`` (SelfSubjectReview)."""
    config = k8s_client.Configuration(host=cluster.control_plane.server)
    config.ssl_ca_cert = str(cluster.control_plane.ca_path)
    config.api_key = {"authorization": f"Bearer {token}"}
    with k8s_client.ApiClient(config) as as_token:
        review = k8s_client.AuthenticationV1Api(as_token).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    return review.status.user_info


class TestServiceAccountTokens:
    """What an agent-identity admission policy can rely on: tokens that name their node."""

    def test_a_token_bound_to_a_pod_names_the_pods_node_to_the_apiserver(
        self, cluster: ClusterFixture, core: k8s_client.CoreV1Api, namespace: str
    ) -> None:
        group = cluster.create_nodes(1)
        node = group.names[0]
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "agent"}})
        pod = PodBuilder("agent").service_account("agent").node_selector(group.selector)
        core.create_namespaced_pod(namespace, pod.build())
        bound = wait_for("the pod to be bound", lambda: _phase(core, "agent", namespace, "Running"))

        token = _token(core, namespace, {"kind": "Pod", "name": "agent", "uid": bound.metadata.uid})
        claims = _jwt_claims(token)
        assert claims["iss"] == devcluster.SERVICE_ACCOUNT_ISSUER
        assert claims["kubernetes.io"]["pod"]["name"] == "agent"
        assert claims["kubernetes.io"]["node"]["name"] == node

        user = _who_am_i(cluster, token)
        assert user.username == f"system:serviceaccount:{namespace}:agent"
        assert user.extra["authentication.kubernetes.io/node-name"] == [node]
        assert user.extra["authentication.kubernetes.io/pod-name"] == ["agent"]

    def test_a_token_bound_directly_to_a_node_names_that_node(
        self, cluster: ClusterFixture, core: k8s_client.CoreV1Api, namespace: str
    ) -> None:
        node = core.read_node(cluster.create_nodes(1).names[0])
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "agent"}})

        token = _token(
            core, namespace, {"kind": "Node", "name": node.metadata.name, "uid": node.metadata.uid}
        )

        user = _who_am_i(cluster, token)
        assert user.extra["authentication.kubernetes.io/node-name"] == [node.metadata.name]
        assert user.extra["authentication.kubernetes.io/node-uid"] == [node.metadata.uid]


class _DenyLabelled(BaseHTTPRequestHandler):
    """Admission webhook: denies pods labelled ``deny=yes``, allows everything else."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        labels = request["object"]["metadata"].get("labels") or {}
        self.seen.append(request["object"]["metadata"].get("name", ""))
        allowed = labels.get("deny") != "yes"
        response = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": request["uid"], "allowed": allowed},
        }
        if not allowed:
            response["response"]["status"] = {
                "code": 403,
                "message": "denied by the loopback webhook",
            }
        body = json.dumps(response).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TestWebhooks:
    def test_the_apiserver_calls_a_webhook_on_loopback_over_tls_with_the_cluster_ca(
        self, cluster: ClusterFixture, cluster_api: k8s_client.ApiClient, namespace: str
    ) -> None:
        cert = cluster.control_plane.issue_serving_cert("webhook-test")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _DenyLabelled)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(cert.cert), str(cert.key))
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        admission = k8s_client.AdmissionregistrationV1Api(cluster_api)
        core = k8s_client.CoreV1Api(cluster_api)
        config_name = f"deny-labelled-{namespace}"
        admission.create_validating_webhook_configuration(
            {
                "metadata": {"name": config_name},
                "webhooks": [
                    {
                        "name": "deny.burstguard.test",
                        "clientConfig": {
                            "url": f"https://127.0.0.1:{server.server_address[1]}/validate",
                            "caBundle": cert.ca_bundle,
                        },
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["pods"],
                            }
                        ],
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        },
                        "failurePolicy": "Fail",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "timeoutSeconds": 5,
                    }
                ],
            }
        )
        attempts = itertools.count()
        try:

            def denied() -> str | None:
                name = f"denied-{next(attempts)}"
                try:
                    core.create_namespaced_pod(
                        namespace, PodBuilder(name).labels(deny="yes").build()
                    )
                except ApiException as exc:
                    return (
                        str(exc.body) if "denied by the loopback webhook" in str(exc.body) else None
                    )
                return None  # created: the configuration was not active yet

            wait_for("the webhook to deny a labelled pod", denied, timeout_s=30)
            core.create_namespaced_pod(namespace, PodBuilder("allowed").build())
            assert "allowed" in _DenyLabelled.seen
        finally:
            admission.delete_validating_webhook_configuration(config_name)
            server.shutdown()
