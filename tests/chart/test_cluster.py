"""The chart's objects on the real local control plane (server-side apply, real admission).

- Every CI render is accepted by the apiserver (schemas, CEL of the admission policy,
  priority classes, webhook configuration validation) and ``manifests/`` passes a server-side
  dry run of ``kubectl apply -k``.
- The agent's identity, a token bound to an agent pod of the rendered DaemonSet, may write
  its own Node and nothing else: the rendered ValidatingAdmissionPolicy is what stops it.
- The operator runs as a local process with the rendered ServiceAccount's token and the
  Deployment's own arguments, behind the rendered webhook configuration (URL mode): it gates
  pods, labels nodes, reports status, and ``burstguard release --all`` (the pre-delete hook)
  releases the gates, all under the rendered RBAC. So the RBAC is known to be sufficient.

Each test renders its own release (unique name, its own namespace) and pins the agent and
operator pods to its own kwok nodes and the webhook to its own namespace, so tests sharing the
control plane do not see it; cluster-scoped objects are deleted at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client

from burstguard.api import names, preparation
from burstguard.k8s import apiclient, nodeviews
from burstguard.k8s import pods as k8s_pods
from tests.chart import generating, render, tools
from tests.chart.conftest import CI_VALUES
from tests.cluster import operating
from tests.cluster.builders import PodBuilder, wait_for
from tests.conftest import ClusterFixture, NodeGroup

pytestmark = pytest.mark.cluster

Json = dict[str, Any]
FIELD_MANAGER = "burstguard-chart-tests"
RUN_LABEL = "burstguard.test/run"


def kubectl(
    cluster: ClusterFixture, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The control plane's own kubectl as admin."""
    done = subprocess.run(
        [str(cluster.control_plane.kubectl), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)},
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def apply(cluster: ClusterFixture, docs: list[Json], *extra: str) -> str:
    """Server-side apply of ``docs``; returns kubectl's output."""
    stream = yaml.safe_dump_all(docs)
    return kubectl(
        cluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        *extra,
        "-f",
        "-",
        stdin=stream,
    ).stdout


@pytest.fixture(scope="module")
def crds(cluster: ClusterFixture, chart_tools: tools.Tools) -> None:
    """The chart's CRDs and the optional kinds' CRDs, installed and Established."""
    files = [*sorted(generating.CRD_COPY.glob("*.yaml")), *chart_tools.extra_crds]
    docs = [d for f in files for d in generating.documents(f.read_text())]
    apply(cluster, docs)
    kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{d['metadata']['name']}" for d in docs],
    )


class Release:
    """One rendered release of the chart, applied to the cluster and removed afterwards."""

    def __init__(
        self,
        cluster: ClusterFixture,
        namespace: str,
        nodes: NodeGroup,
        values: Json | None = None,
        *,
        values_files: tuple[Path, ...] = (),
        webhook_namespace: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = f"bg-{uuid.uuid4().hex[:8]}"
        pinned: Json = {
            "operator": {"nodeSelector": nodes.selector},
            "agent": {"nodeSelector": nodes.selector},
            "webhook": {
                "namespaceSelectorExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        # The release namespace is always excluded: by default the webhook
                        # then matches nothing at all.
                        "values": [webhook_namespace or namespace],
                    }
                ]
            },
        }
        for key, value in (values or {}).items():
            pinned[key] = {**pinned.get(key, {}), **value}
        self.docs = render.objects(
            pinned, release=self.name, namespace=namespace, values_files=values_files
        )

    def kind(self, kind: str) -> Json:
        return render.pick(self.docs, kind)

    def apply(self) -> str:
        return apply(self.cluster, self.docs)

    def delete(self) -> None:
        cluster_scoped = [d for d in self.docs if "namespace" not in d["metadata"]]
        kubectl(
            self.cluster,
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(cluster_scoped),
            check=False,
        )


@pytest.fixture
def release_factory(cluster: ClusterFixture, crds: None, namespace: str) -> Iterator[Any]:
    made: list[Release] = []

    def make(nodes: NodeGroup, values: Json | None = None, **kwargs: Any) -> Release:
        release = Release(cluster, namespace, nodes, values, **kwargs)
        made.append(release)
        return release

    try:
        yield make
    finally:
        for release in made:
            release.delete()


def token_for(
    core: k8s_client.CoreV1Api, namespace: str, account: str, pod: Json | None = None
) -> str:
    """A TokenRequest token for a ServiceAccount, bound to ``pod`` when given."""
    spec: Json = {"expirationSeconds": 3600}
    if pod is not None:
        spec["boundObjectRef"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
        }
    answer = core.create_namespaced_service_account_token(account, namespace, {"spec": spec})
    token: str = answer.status.token
    return token


def token_kubeconfig(cluster: ClusterFixture, token: str, path: Path) -> Path:
    """A kubeconfig authenticating with a bearer token."""
    ca = base64.b64encode(cluster.control_plane.ca_path.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cluster.control_plane.server,
                    "certificate-authority-data": ca,
                },
            }
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class TestAccepted:
    @pytest.mark.parametrize(
        "values", CI_VALUES, ids=[p.name.removesuffix("-values.yaml") for p in CI_VALUES]
    )
    def test_every_ci_render_is_accepted_by_the_apiserver(
        self, cluster: ClusterFixture, release_factory: Any, values: Path
    ) -> None:
        nodes = cluster.create_nodes(1)
        release = release_factory(nodes, values_files=(values,))
        output = release.apply()
        applied = [line for line in output.splitlines() if "serverside-applied" in line]
        assert len(applied) == len(release.docs), output

    def test_generated_manifests_pass_a_server_side_dry_run_of_apply_k(
        self, cluster: ClusterFixture, crds: None
    ) -> None:
        kubectl(
            cluster, "apply", "--server-side", "-f", str(generating.MANIFESTS / "namespace.yaml")
        )
        output = kubectl(
            cluster,
            "apply",
            "--server-side",
            "--dry-run=server",
            f"--field-manager={FIELD_MANAGER}",
            "-k",
            str(generating.MANIFESTS),
        ).stdout
        expected = len(
            generating.documents(
                "\n---\n".join(
                    p.read_text()
                    for p in generating.MANIFESTS.rglob("*.yaml")
                    if p.name not in {"kustomization.yaml", "values.yaml"}
                )
            )
        )
        assert output.count("serverside-applied") == expected, output


def agent_pods(core: k8s_client.CoreV1Api, namespace: str, count: int) -> list[Json]:
    """The rendered DaemonSet's pods once ``count`` of them are bound to nodes."""

    def bound() -> list[Json] | None:
        pods = core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/component=agent"
        ).items
        found = [core.api_client.sanitize_for_serialization(p) for p in pods if p.spec.node_name]
        return found if len(found) == count else None

    return wait_for(f"{count} agent pods bound to nodes", bound, timeout_s=60)


def forbidden(call: Any) -> str:
    """Run ``call``; return the apiserver's message if it answered 403, fail otherwise."""
    try:
        call()
    except k8s_client.ApiException as exc:
        assert exc.status == 403, exc.body
        return str(exc.body)
    raise AssertionError("the write was allowed")


def denied(call: Any) -> bool:
    """Whether ``call`` is refused with 403 (any other error fails the test)."""
    try:
        call()
    except k8s_client.ApiException as exc:
        assert exc.status == 403, exc.body
        return True
    return False


def headroom_condition(node: str, status: str) -> Json:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "status": {
            "conditions": [
                {
                    "type": names.HEADROOM_CONDITION,
                    "status": status,
                    "reason": "Test",
                    "message": f"written for {node}",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ]
        }
    }


class TestAgentIdentity:
    def test_the_agent_may_write_only_its_own_node_and_only_burstguards_fields(
        self, cluster: ClusterFixture, release_factory: Any
    ) -> None:
        nodes = cluster.create_nodes(2)
        release = release_factory(nodes)
        release.apply()
        account = release.kind("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            pods = agent_pods(core, release.namespace, 2)
            mine = pods[0]
            own, other = mine["spec"]["nodeName"], pods[1]["spec"]["nodeName"]
            token = token_for(core, release.namespace, account, pod=mine)
        summary = {"metadata": {"annotations": {names.SUMMARY_ANNOTATION: "{}"}}}
        with cluster.token_client(token) as api:
            agent = k8s_client.CoreV1Api(api)
            # A new admission policy takes effect a moment after it is created.
            wait_for(
                "the admission policy denying a write to another node",
                lambda: denied(lambda: agent.patch_node(other, summary)),
                timeout_s=30,
            )
            agent.patch_node(own, summary)
            agent.patch_node_status(own, headroom_condition(own, "True"))
            message = forbidden(lambda: agent.patch_node(other, summary))
            assert "only the Node its pod runs on" in message
            message = forbidden(
                lambda: agent.patch_node(
                    own, {"metadata": {"labels": {names.INTAKE_LABEL: "open"}}}
                )
            )
            assert "may not change Node labels" in message
            message = forbidden(
                lambda: agent.patch_node(own, {"metadata": {"annotations": {"other.io/x": "1"}}})
            )
            assert "only burstguard.io/ annotations" in message
            message = forbidden(lambda: agent.patch_node(own, {"spec": {"unschedulable": True}}))
            assert "may not change the Node spec" in message
            message = forbidden(
                lambda: agent.patch_node(own, {"metadata": {"finalizers": ["example.com/hold"]}})
            )
            assert "owners or finalizers" in message
            ready = headroom_condition(own, "False")
            ready["status"]["conditions"][0]["type"] = "Ready"
            message = forbidden(lambda: agent.patch_node_status(own, ready))
            assert "BurstguardHeadroom" in message
        with cluster.api_client() as admin:
            node = k8s_client.CoreV1Api(admin).read_node(own)
            assert node.metadata.annotations[names.SUMMARY_ANNOTATION] == "{}"
            types = {c.type: c.status for c in node.status.conditions}
            assert types[names.HEADROOM_CONDITION] == "True"


async def operator_writes(kubeconfig: Path, pod: Json, node: str) -> None:
    """The operator's own writes, through its own code: a pinned release, the intake label and
    a preparation request."""
    api = await apiclient.connect(str(kubeconfig))
    try:
        assert await k8s_pods.release(api, k8s_pods.compact(pod), node) == "released"
        await nodeviews.set_intake(api, node, "closed")
        request = preparation.PrepareRequest(
            id="t-1", bytes_wanted=1, requested_at=time.time(), policy="t", reason="test"
        )
        await nodeviews.write_prepare_request(api, node, request)
    finally:
        await api.close()


class TestOperatorApiPolicies:
    """The operator's token is refused by the apiserver for everything but its own writes."""

    def test_the_operators_identity_may_release_and_label_but_not_change_images_or_taints(
        self, cluster: ClusterFixture, release_factory: Any, tmp_path: Path
    ) -> None:
        nodes = cluster.create_nodes(1)
        node = nodes.names[0]
        release = release_factory(nodes)
        release.apply()
        account = release.kind("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        namespace = release.namespace
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            token = token_for(core, namespace, account)
            body = PodBuilder("victim").gates("example.com/other", names.SCHEDULING_GATE).build()
            body["metadata"]["annotations"] = {names.POLICY_ANNOTATION: "p"}
            core.create_namespaced_pod(namespace, body)
            pod = core.api_client.sanitize_for_serialization(
                core.read_namespaced_pod("victim", namespace)
            )
        image = [{"op": "replace", "path": "/spec/containers/0/image", "value": "evil:latest"}]

        def taint() -> Json:
            """A taint patch that changes the node every time (an unchanged one is no write)."""
            value = uuid.uuid4().hex[:8]
            return {"spec": {"taints": [{"key": "evil", "value": value, "effect": "NoSchedule"}]}}

        with cluster.token_client(token) as api:
            operator = k8s_client.CoreV1Api(api)
            # A new admission policy takes effect a moment after it is created.
            wait_for(
                "the admission policy refusing a taint",
                lambda: denied(lambda: operator.patch_node(node, taint())),
                timeout_s=30,
            )
            message = forbidden(lambda: operator.patch_namespaced_pod("victim", namespace, image))
            assert "may not change a pod's containers, images" in message
            message = forbidden(lambda: operator.patch_node(node, taint()))
            assert "may not change a Node's spec (taints, unschedulable)" in message
            message = forbidden(
                lambda: operator.patch_node(node, {"spec": {"unschedulable": True}})
            )
            assert "may not change a Node's spec" in message
            other_gate = [{"op": "remove", "path": "/spec/schedulingGates/0"}]
            message = forbidden(
                lambda: operator.patch_namespaced_pod("victim", namespace, other_gate)
            )
            assert "only remove its own scheduling gate" in message
            label = {"metadata": {"labels": {"app": "evil"}}}
            message = forbidden(lambda: operator.patch_namespaced_pod("victim", namespace, label))
            assert "labels, annotations" in message
            message = forbidden(lambda: operator.patch_node(node, label))
            assert "only the burstguard.io/intake label" in message
            annotation = {"metadata": {"annotations": {"example.com/x": "1"}}}
            message = forbidden(lambda: operator.patch_node(node, annotation))
            assert "only burstguard.io/ annotations" in message
            finalizer = {"metadata": {"finalizers": ["example.com/hold"]}}
            message = forbidden(lambda: operator.patch_node(node, finalizer))
            assert "owners or finalizers" in message
            # Secrets: none, not even the webhook's own certificate (a mounted volume).
            forbidden(lambda: operator.list_namespaced_secret(namespace))
            forbidden(
                lambda: operator.read_namespaced_secret(
                    render.pick(release.docs, "Secret")["metadata"]["name"], namespace
                )
            )
            forbidden(operator.list_secret_for_all_namespaces)
        # What it does write still passes: the release with its pin, the label, the request.
        kubeconfig = token_kubeconfig(cluster, token, tmp_path / "operator-kubeconfig")
        asyncio.run(operator_writes(kubeconfig, pod, node))
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            after = core.read_namespaced_pod("victim", namespace)
            assert [g.name for g in after.spec.scheduling_gates] == ["example.com/other"]
            assert after.spec.containers[0].image == pod["spec"]["containers"][0]["image"]
            [term] = (
                after.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
            )
            assert [(f.key, f.operator, f.values) for f in term.match_fields] == [
                ("metadata.name", "In", [node])
            ]
            written = core.read_node(node)
            assert written.metadata.labels[names.INTAKE_LABEL] == "closed"
            assert names.PREPARE_REQUEST_ANNOTATION in written.metadata.annotations
            core.delete_namespaced_pod("victim", namespace, grace_period_seconds=0)


def operator_argv(
    release: Release, *, webhook_port: int, metrics_port: int, cert_dir: Path
) -> list[str]:
    """The rendered Deployment's command line, with the listening addresses made local."""
    container = release.kind("Deployment")["spec"]["template"]["spec"]["containers"][0]
    local = {
        "--webhook-host": "127.0.0.1",
        "--webhook-port": str(webhook_port),
        "--metrics-port": str(metrics_port),
        "--cert-dir": str(cert_dir),
    }
    args = [
        f"{a.split('=', 1)[0]}={local[a.split('=', 1)[0]]}" if a.split("=", 1)[0] in local else a
        for a in container["args"]
    ]
    assert container["command"] == ["burstguard"]
    return [sys.executable, "-m", "burstguard.cli.main", *args]


def gated(pod: Any) -> bool:
    return any(g.name == names.SCHEDULING_GATE for g in pod.spec.scheduling_gates or [])


class TestOperatorIdentity:
    def test_the_operator_and_the_release_hook_work_with_the_rendered_rbac(
        self, cluster: ClusterFixture, release_factory: Any, tmp_path: Path
    ) -> None:
        workloads = f"w-{uuid.uuid4().hex[:10]}"  # gated pods live outside the release namespace
        kubectl(cluster, "create", "namespace", workloads)
        try:
            self.check_operator(cluster, release_factory, tmp_path, workloads)
        finally:
            kubectl(cluster, "delete", "namespace", workloads, "--wait=false")

    def check_operator(
        self, cluster: ClusterFixture, release_factory: Any, tmp_path: Path, workloads: str
    ) -> None:
        nodes = cluster.create_nodes(1)
        node = nodes.names[0]
        webhook_port, metrics_port = operating.free_port(), operating.free_port()
        serving = cluster.control_plane.issue_serving_cert(f"chart-{uuid.uuid4().hex[:6]}")
        cert_dir = tmp_path / "certs"
        cert_dir.mkdir()
        (cert_dir / "tls.crt").write_bytes(serving.cert.read_bytes())
        (cert_dir / "tls.key").write_bytes(serving.key.read_bytes())
        (cert_dir / "ca.pem").write_bytes(cluster.control_plane.ca_path.read_bytes())
        release = release_factory(
            nodes,
            {
                "webhook": {
                    "url": f"https://127.0.0.1:{webhook_port}/mutate-pods",
                    "caBundle": base64.b64encode(
                        cluster.control_plane.ca_path.read_bytes()
                    ).decode(),
                }
            },
            webhook_namespace=workloads,
        )
        release.apply()
        account = release.kind("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        run = operating.unique("rbac")
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            token = token_for(core, release.namespace, account)
            kubeconfig = token_kubeconfig(cluster, token, tmp_path / "operator-kubeconfig")
            operating.publish(core, node, 0)  # closed: the pacer holds the pods
            policies = operating.Policies(admin)
            log = (tmp_path / "operator.log").open("wb")
            env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
            proc = subprocess.Popen(
                operator_argv(
                    release, webhook_port=webhook_port, metrics_port=metrics_port, cert_dir=cert_dir
                ),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(
                    "the operator serving metrics",
                    lambda: proc.poll() is not None or operating_metrics(metrics_port),
                    timeout_s=90,
                )
                assert proc.poll() is None, (tmp_path / "operator.log").read_text()
                policies.create(
                    operating.burst_policy(
                        run, pod_labels={RUN_LABEL: run}, node_labels=nodes.selector
                    )
                )
                wait_for(
                    "the policy reported Ready by the operator",
                    lambda: (policies.ready(run) or {}).get("status") == "True",
                    timeout_s=60,
                )
                wait_for(
                    "the node labelled closed by the operator",
                    lambda: (
                        core.read_node(node).metadata.labels.get(names.INTAKE_LABEL) == "closed"
                    ),
                    timeout_s=60,
                )
                pods = []
                for i in range(3):
                    body = PodBuilder(f"p{i}").node_selector(nodes.selector).build()
                    body["metadata"]["labels"] = {RUN_LABEL: run}
                    pods.append(core.create_namespaced_pod(workloads, body))
                assert all(gated(p) for p in pods), "the rendered webhook did not gate the pods"
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
                policies.delete_all()
            hook = release.kind("Job")["spec"]["template"]["spec"]["containers"][0]
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "burstguard.cli.main",
                    *hook["args"],
                    "--kubeconfig",
                    str(kubeconfig),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            remaining = [
                p.metadata.name
                for p in core.list_namespaced_pod(
                    workloads, label_selector=f"{RUN_LABEL}={run}"
                ).items
                if gated(p)
            ]
            assert remaining == []
        text = (tmp_path / "operator.log").read_text(errors="replace")
        assert not re.search("forbidden", text, re.IGNORECASE), text[-4000:]


def operating_metrics(port: int) -> bool:
    """Whether the operator answers on its metrics port."""
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1),
    ):
        return True
    return False


def helm(cluster: ClusterFixture, chart_tools: tools.Tools, *args: str) -> str:
    """helm against the local control plane as admin; fails the test on error."""
    done = subprocess.run(
        [str(chart_tools.helm), *args, "--kubeconfig", str(cluster.kubeconfig_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class TestHelmLifecycle:
    def test_upgrade_keeps_the_webhook_ca_and_uninstall_runs_the_release_hook(
        self,
        cluster: ClusterFixture,
        chart_tools: tools.Tools,
        crds: None,
        namespace: str,
        tmp_path: Path,
    ) -> None:
        nodes = cluster.create_nodes(1)
        name = f"bg-{uuid.uuid4().hex[:8]}"
        values = tmp_path / "values.yaml"
        values.write_text(
            yaml.safe_dump(
                {
                    "operator": {"nodeSelector": nodes.selector},
                    "agent": {"nodeSelector": nodes.selector},
                    "webhook": {
                        "namespaceSelectorExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": [namespace],
                            }
                        ]
                    },
                }
            )
        )
        common = ["-n", namespace, "-f", str(values), "--skip-crds"]
        helm(cluster, chart_tools, "install", name, str(generating.CHART), *common)
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            webhooks = k8s_client.AdmissionregistrationV1Api(admin)
            secret = f"{name}-burstguard-webhook-tls"

            def trust() -> tuple[str, str]:
                """The CA in the Secret and the webhook's caBundle (both base64 PEM)."""
                ca: str = core.read_namespaced_secret(secret, namespace).data["ca.crt"]
                config = webhooks.read_mutating_webhook_configuration(f"{name}-burstguard")
                bundle: str = config.webhooks[0].client_config.ca_bundle
                return ca, bundle

            installed = trust()
            assert installed[0] == installed[1]
            helm(cluster, chart_tools, "upgrade", name, str(generating.CHART), *common)
            assert trust() == installed, "helm upgrade replaced the webhook's CA"
            helm(cluster, chart_tools, "uninstall", name, "-n", namespace, "--timeout", "120s")
            created = [
                e
                for e in core.list_namespaced_event(namespace).items
                if e.involved_object.kind == "Job"
                and e.involved_object.name == f"{name}-burstguard-release-gates"
                and e.reason == "SuccessfulCreate"
            ]
            assert created, "the pre-delete hook Job never ran"
            with pytest.raises(k8s_client.ApiException):
                webhooks.read_mutating_webhook_configuration(f"{name}-burstguard")


class TestFailOpen:
    def test_with_nothing_listening_pods_are_created_ungated_at_once(
        self, cluster: ClusterFixture, crds: None, namespace: str
    ) -> None:
        confined = {
            "webhook": {
                "namespaceSelectorExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}
                ]
            }
        }
        url = f"https://127.0.0.1:{operating.free_port()}/mutate-pods"
        nodes = cluster.create_nodes(1)
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            with render.registered_webhook(
                admin,
                url=url,
                ca_pem=cluster.control_plane.ca_path.read_bytes(),
                release=f"bg-{uuid.uuid4().hex[:8]}",
                values=confined,
            ) as config:
                assert config["webhooks"][0]["clientConfig"]["url"] == url
                name = config["webhooks"][0]["name"]
                before = fail_open_count(cluster, name)
                took = []
                for i in range(5):
                    body = PodBuilder(f"open-{i}").node_selector(nodes.selector).build()
                    began = time.monotonic()
                    pod = core.create_namespaced_pod(namespace, body)
                    took.append(time.monotonic() - began)
                    assert not gated(pod)
                # The apiserver did call the webhook, failed, and admitted the pods anyway.
                assert fail_open_count(cluster, name) - before == 5
        # failurePolicy Ignore with nothing listening: refused at once, not the 2 s timeout.
        assert max(took) < 1.0, took


def fail_open_count(cluster: ClusterFixture, webhook: str) -> float:
    """The apiserver's apiserver_admission_webhook_fail_open_count for one webhook."""
    text = kubectl(cluster, "get", "--raw", "/metrics").stdout
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_admission_webhook_fail_open_count{") and (
            f'name="{webhook}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def agent_argv(release: Release, *, node: str, metrics_port: int) -> list[str]:
    """The rendered DaemonSet's command line, reading this machine's /proc for ``node``."""
    container = release.kind("DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    local = {
        "--node-name": node,
        "--proc-root": "/proc",
        "--metrics-port": str(metrics_port),
        "--metrics-host": "127.0.0.1",
    }
    args = [
        f"{a.split('=', 1)[0]}={local[a.split('=', 1)[0]]}" if a.split("=", 1)[0] in local else a
        for a in container["args"]
    ]
    assert container["command"] == ["burstguard"]
    return [sys.executable, "-m", "burstguard.cli.main", *args]


class TestAgentProcess:
    def test_the_agent_publishes_on_its_node_as_the_rendered_identity(
        self, cluster: ClusterFixture, release_factory: Any, tmp_path: Path
    ) -> None:
        nodes = cluster.create_nodes(1)
        release = release_factory(nodes)
        release.apply()
        account = release.kind("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        with cluster.api_client() as admin:
            core = k8s_client.CoreV1Api(admin)
            [pod] = agent_pods(core, release.namespace, 1)
            node = pod["spec"]["nodeName"]
            token = token_for(core, release.namespace, account, pod=pod)
            kubeconfig = token_kubeconfig(cluster, token, tmp_path / "agent-kubeconfig")
            log_path = tmp_path / "agent.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [
                        *agent_argv(release, node=node, metrics_port=operating.free_port()),
                        f"--kubeconfig={kubeconfig}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
                )
                try:

                    def published() -> bool:
                        assert proc.poll() is None, log_path.read_text()
                        n = core.read_node(node)
                        conditions = {c.type for c in n.status.conditions or []}
                        return (
                            names.SUMMARY_ANNOTATION in (n.metadata.annotations or {})
                            and names.HEADROOM_CONDITION in conditions
                        )

                    wait_for(
                        "the agent's summary and condition on its node", published, timeout_s=60
                    )
                finally:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
        text = log_path.read_text(errors="replace")
        assert not re.search("forbidden|denied", text, re.IGNORECASE), text[-4000:]


class TestPodSecurity:
    def test_the_agent_needs_the_privileged_level_that_manifests_namespace_sets(
        self, cluster: ClusterFixture, chart_tools: tools.Tools
    ) -> None:
        docs = render.objects({})
        template = render.pick(docs, "DaemonSet")["spec"]["template"]
        namespace_doc = generating.documents((generating.MANIFESTS / "namespace.yaml").read_text())[
            0
        ]
        level = namespace_doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        outcomes = {}
        for enforce in ("baseline", level):
            name = f"psa-{enforce}-{uuid.uuid4().hex[:6]}"
            kubectl(cluster, "create", "namespace", name)
            try:
                kubectl(
                    cluster,
                    "label",
                    "namespace",
                    name,
                    f"pod-security.kubernetes.io/enforce={enforce}",
                )
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "agent", "namespace": name},
                    "spec": {**template["spec"], "serviceAccountName": "default"},
                }
                done = kubectl(
                    cluster,
                    "create",
                    "--dry-run=server",
                    "-f",
                    "-",
                    stdin=yaml.safe_dump(pod),
                    check=False,
                )
                outcomes[enforce] = (done.returncode, done.stderr)
            finally:
                kubectl(cluster, "delete", "namespace", name, "--wait=false")
        assert outcomes["baseline"][0] != 0
        assert "hostPath" in outcomes["baseline"][1]
        assert outcomes[level][0] == 0, outcomes[level][1]
