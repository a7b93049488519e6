"""The chart as real pods on node real-0: the image `make image` builds, imported into the
node's containerd, installed with helm; the operator serves the webhook through the chart's
Service, the agent publishes from inside its pod, preparation drops page cache on the host,
and uninstalling releases every gate.

One install serves the whole module (``chart``); the tests run in file order, since the later
ones upgrade it (preparation on) and finally uninstall it. The apiserver has no kube-proxy in
front of the Service: it dials the Service's endpoints itself (``--enable-aggregator-routing``
also routes webhook calls), and with ``hostNetwork`` the operator's endpoint is real-0's
InternalIP on the node's bridge. The pods reach the apiserver on the host's loopback through
the chart's ``hostNetwork.apiServerHost``, since real-0 has neither kube-proxy nor cluster DNS.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client

from burstguard.api import names, nodesummary, preparationack
from burstguard.devcluster import binaries, localimages, realnode
from burstguard.devcluster import cluster as devcluster
from tests.chart import render
from tests.cluster import operating
from tests.cluster.builders import wait_for
from tests.image import images
from tests.realnode.conftest import RealNodeFixture, skip_or_fail

CHART = Path(__file__).resolve().parents[2] / "charts" / "burstguard"
NAMESPACE = "burstguard-system"
RELEASE = "bg"
FULLNAME = f"{RELEASE}-burstguard"
MIB = 2**20
WARM_MIB = 384
"""Size of the file whose page cache the agent's preparation must drop."""
WRITE_PROBE = r"""
import errno, json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            current = f.read()
    except OSError as exc:
        current = "1\n"  # write-only files (compact_memory, drop_caches) read back nothing
    try:
        with open(path, "w") as f:  # the value it already holds: a write that got through
            f.write(current)        # would change nothing on the host
        out[path] = "written"
    except OSError as exc:
        out[path] = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps(out))
"""
"""Run by the image's Python inside the agent container: tries to write each path given."""


@dataclass
class Chart:
    """The module's helm release on real-0."""

    node: RealNodeFixture
    image: images.Image
    values: dict[str, Any]
    directory: Path
    timings: dict[str, float] = field(default_factory=dict)
    installed: bool = True

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.node.cluster.kubeconfig_path)}
        argv = [str(render.helm()), *args]
        done = subprocess.run(
            argv, check=False, capture_output=True, text=True, env=env, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [
            str(binaries.locate().kubectl),
            f"--kubeconfig={self.node.cluster.kubeconfig_path}",
            *args,
        ]
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)

    def install(self, verb: str, values: dict[str, Any]) -> None:
        path = self.directory / f"values-{verb}-{len(self.timings)}.yaml"
        path.write_text(yaml.safe_dump(values))
        start = time.monotonic()
        self.helm(
            verb, RELEASE, str(CHART), f"--namespace={NAMESPACE}", "--create-namespace",
            f"--values={path}", "--wait", "--timeout=240s",
        )  # fmt: skip
        self.wait_ready()
        self.timings[f"helm {verb} to Ready"] = time.monotonic() - start
        self.values = values

    def wait_ready(self) -> None:
        """Every operator and agent pod updated and Ready. ``helm --wait`` is not enough: it
        counts a Deployment ready at ``replicas - maxUnavailable``, which is 0 with hostNetwork
        (one pod stops before its successor starts)."""
        with self.node.cluster.api_client() as api:
            apps = k8s_client.AppsV1Api(api)

            def ready() -> bool:
                dep = apps.read_namespaced_deployment(f"{FULLNAME}-operator", NAMESPACE)
                ds = apps.read_namespaced_daemon_set(f"{FULLNAME}-agent", NAMESPACE)
                want = dep.spec.replicas
                return (
                    dep.status.observed_generation == dep.metadata.generation
                    and (dep.status.updated_replicas or 0) == want
                    and (dep.status.ready_replicas or 0) == want
                    and (dep.status.replicas or 0) == want
                    and ds.status.observed_generation == ds.metadata.generation
                    and (ds.status.updated_number_scheduled or 0)
                    == ds.status.desired_number_scheduled
                    and (ds.status.number_ready or 0) == ds.status.desired_number_scheduled
                    and (ds.status.number_unavailable or 0) == 0
                )

            wait_for("the operator and agent pods Ready", ready, timeout_s=240, every_s=1)

    def agent_pod(self, core: k8s_client.CoreV1Api) -> k8s_client.V1Pod:
        pods = core.list_namespaced_pod(
            NAMESPACE, label_selector="app.kubernetes.io/component=agent"
        ).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        assert len(live) == 1, [p.metadata.name for p in pods]
        return live[0]


def ci_like_values(chart_image: images.Image, node: RealNodeFixture) -> dict[str, Any]:
    """The chart's defaults plus what a cluster without kube-proxy needs.

    hostNetwork at the apiserver on the host's loopback; one operator replica (two would ask
    for the same host ports on the one node); ports picked free on this host, which runs other
    clusters too; the image pinned by digest and never pulled.
    """
    webhook, op_metrics, agent_metrics = realnode.free_ports(3)
    server = node.cluster.control_plane.server  # https://127.0.0.1:<port>
    return {
        "image": {"digest": chart_image.digest, "pullPolicy": "Never"},
        "hostNetwork": {
            "enabled": True,
            "apiServerHost": "127.0.0.1",
            "apiServerPort": int(server.rsplit(":", 1)[1]),
        },
        "operator": {"replicas": 1, "metricsPort": op_metrics},
        "webhook": {"port": webhook},
        # Observing first (preparation is on by default); a later test upgrades it on.
        "agent": {"metricsPort": agent_metrics, "preparation": {"enabled": False}},
    }


@pytest.fixture(scope="module")
def chart(real_node: RealNodeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chart]:
    why = images.missing_capability()
    if why:
        skip_or_fail(why)
    render.require_tools()
    timings: dict[str, float] = {}
    start = time.monotonic()
    built = images.build()
    timings["image build or reuse"] = time.monotonic() - start
    start = time.monotonic()
    real_node.import_image(built.archive)
    timings["image import"] = time.monotonic() - start
    installed = Chart(real_node, built, {}, tmp_path_factory.mktemp("chart"), timings=timings)
    try:
        installed.install("install", ci_like_values(built, real_node))
        yield installed
    finally:
        if installed.installed:
            installed.helm("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait")
        with real_node.cluster.api_client() as api:
            core = k8s_client.CoreV1Api(api)
            core.delete_namespace(NAMESPACE)
            remove_policies(api)
            forget_node_state(core, real_node.node_name)
        sizes = f"image {built.uncompressed_bytes / MIB:.0f} MiB uncompressed"
        print(
            "chart pods timings: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
            + f"; {sizes}"
        )


def remove_policies(api: k8s_client.ApiClient) -> None:
    """Delete every BurstPolicy, dropping kopf's finalizer: no operator is left to remove it."""
    custom = k8s_client.CustomObjectsApi(api)
    group, version, plural = names.GROUP, names.VERSION, names.POLICY_PLURAL
    for item in custom.list_cluster_custom_object(group, version, plural)["items"]:
        name = item["metadata"]["name"]
        custom.patch_cluster_custom_object(
            group, version, plural, name, {"metadata": {"finalizers": None}}
        )
        custom.delete_cluster_custom_object(group, version, plural, name)


def forget_node_state(core: k8s_client.CoreV1Api, node: str) -> None:
    """Remove what the agent and operator wrote on real-0, for the session's other tests."""
    meta = core.read_node(node).metadata
    patch = {
        "metadata": {
            "annotations": {
                k: None for k in meta.annotations or {} if k.startswith("burstguard.io/")
            },
            "labels": {k: None for k in meta.labels or {} if k.startswith("burstguard.io/")},
        }
    }
    core.patch_node(node, patch)


def node_annotations(core: k8s_client.CoreV1Api, node: str) -> dict[str, str]:
    return dict(core.read_node(node).metadata.annotations or {})


def test_the_operator_and_agent_run_from_the_imported_image_and_become_ready_on_real_0(
    chart: Chart,
) -> None:
    with chart.node.cluster.api_client() as api:
        apps = k8s_client.AppsV1Api(api)
        core = k8s_client.CoreV1Api(api)
        deployment = apps.read_namespaced_deployment(f"{FULLNAME}-operator", NAMESPACE)
        daemonset = apps.read_namespaced_daemon_set(f"{FULLNAME}-agent", NAMESPACE)
        pods = core.list_namespaced_pod(NAMESPACE).items
    assert deployment.status.ready_replicas == 1
    assert daemonset.status.number_ready == daemonset.status.desired_number_scheduled == 1
    running = [p for p in pods if p.status.phase == "Running"]
    assert {p.metadata.labels["app.kubernetes.io/component"] for p in running} == {
        "operator",
        "agent",
    }
    for pod in running:
        assert pod.spec.node_name == chart.node.node_name
        (status,) = pod.status.container_statuses
        assert status.ready and status.restart_count == 0, (pod.metadata.name, status)
        assert status.image_id.endswith(chart.image.digest), status.image_id


def test_the_webhook_is_registered_at_the_charts_service_with_no_url(chart: Chart) -> None:
    with chart.node.cluster.api_client() as api:
        admission = k8s_client.AdmissionregistrationV1Api(api)
        configs = [
            c
            for c in admission.list_mutating_webhook_configuration().items
            if c.metadata.name.startswith(FULLNAME)
        ]
        endpoints = k8s_client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={FULLNAME}-operator"
        )
    assert configs, "no MutatingWebhookConfiguration of the release"
    for hook in [w for c in configs for w in c.webhooks]:
        assert hook.client_config.url is None
        assert hook.client_config.service.name == f"{FULLNAME}-operator"
        assert hook.client_config.service.namespace == NAMESPACE
        assert hook.client_config.ca_bundle
    addresses = [a for s in endpoints.items for e in s.endpoints or [] for a in e.addresses]
    assert addresses == [chart.node.node.instance.node_ip]


def test_a_paced_job_is_gated_by_the_in_cluster_webhook_and_released_to_succeeded_on_real_0(
    chart: Chart,
) -> None:
    run = operating.unique("chartjob")
    labels = {"burstguard.test/run": run}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": workload_spec(memory="32Mi"),
            },
        },
    }
    with chart.node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        batch = k8s_client.BatchV1Api(api)
        policies = operating.Policies(api)
        policies.create(
            operating.burst_policy(
                run,
                pod_labels=labels,
                node_labels={devcluster.NODE_LABEL: realnode.NODE_LABEL_VALUE},
            )
        )
        try:
            wait_for(
                "policy ready",
                lambda: (policies.ready(run) or {}).get("status") == "True",
                timeout_s=60,
            )
            with operating.PodTimeline(api, "default") as timeline:
                batch.create_namespaced_job("default", job)
                wait_for(
                    "the Job complete",
                    lambda: (batch.read_namespaced_job(run, "default").status.succeeded or 0) == 1,
                    timeout_s=120,
                )
            created = [
                p
                for p in timeline.first_seen().values()
                if p["metadata"].get("labels", {}).get("burstguard.test/run") == run
            ]
            assert len(created) == 1
            pod = created[0]
            assert operating.gated(pod), "the in-cluster webhook did not gate the Job's pod"
            assert pod["metadata"]["annotations"][names.POLICY_ANNOTATION] == run
            name = pod["metadata"]["name"]
            assert name in timeline.release_times(), "the pod was never seen released"
            done = core.read_namespaced_pod(name, "default")
            assert done.status.phase == "Succeeded"
            assert done.spec.node_name == chart.node.node_name
            labels_now = core.read_node(chart.node.node_name).metadata.labels
            assert labels_now.get(names.INTAKE_LABEL) == names.INTAKE_OPEN, (
                "the operator's leader did not label real-0 from the agent's summary"
            )
        finally:
            batch.delete_namespaced_job(
                run, "default", propagation_policy="Background", grace_period_seconds=0
            )
            policies.delete_all()


def test_the_agent_pod_publishes_real_0s_summary_and_refreshes_it(chart: Chart) -> None:
    node = chart.node.node_name
    with chart.node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)

        def sampled_at() -> float | None:
            text = node_annotations(core, node).get(names.SUMMARY_ANNOTATION)
            return nodesummary.decode(text).sampled_at if text else None

        first = wait_for("a summary on real-0", sampled_at, timeout_s=30)
        later = wait_for(
            "a newer summary",
            lambda: (at := sampled_at()) is not None and at > first and at,
            timeout_s=60,
        )
        read = core.read_node(node)
    summary = nodesummary.decode(read.metadata.annotations[names.SUMMARY_ANNOTATION])
    assert later > first
    assert summary.headroom_bytes is not None and summary.headroom_bytes > 0
    assert summary.kernel_release == os.uname().release  # the host's kernel, read in the pod
    condition = [c for c in read.status.conditions if c.type == names.HEADROOM_CONDITION]
    assert condition and condition[0].status in ("True", "False")


def warm_file(path: Path, mib: int) -> None:
    """Write ``mib`` MiB to ``path``, flush it to disk (clean pages) and read it back."""
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    with path.open("rb") as f:
        while f.read(8 * MIB):
            pass


def resident_bytes(path: Path) -> int:
    """Page-cache bytes of ``path`` (util-linux fincore)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output=RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[0])


def cached_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Cached:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no Cached line in /proc/meminfo")


def test_preparation_as_a_pod_drops_host_page_cache_and_the_operator_reads_the_ack(
    chart: Chart, tmp_path: Path
) -> None:
    """An Enforce policy whose one pod asks for more memory than real-0 has: the pacer asks
    the node to prepare, the agent (now in preparation mode) drops clean page cache on the
    host, acks what it freed, and the operator reads that answer. The pod stays gated, as the
    held pod the uninstall test needs."""
    values = json.loads(json.dumps(chart.values))
    values["agent"]["preparation"] = {"enabled": True, "dropPageCache": True}
    warm = tmp_path / "warm.bin"
    warm_file(warm, WARM_MIB)
    node = chart.node.node_name
    with chart.node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        old_agent = chart.agent_pod(core).metadata.name
        chart.install("upgrade", values)
        wait_for(
            "the agent in preparation mode Ready",
            lambda: (
                (p := chart.agent_pod(core)).metadata.name != old_agent
                and all(s.ready for s in p.status.container_statuses or [])
                and p.status.container_statuses
            ),
            timeout_s=120,
        )
        agent = chart.agent_pod(core)
        assert "--prepare" in agent.spec.containers[0].args
        warm_file(warm, WARM_MIB)  # again: the rollout took time; make it resident now
        resident_before, cached_before = resident_bytes(warm), cached_bytes()
        assert resident_before >= 0.9 * WARM_MIB * MIB, resident_before
        run = operating.unique("held")
        labels = {"burstguard.test/run": run, "burstguard.test/held": "true"}
        policies = operating.Policies(api)
        body = operating.burst_policy(
            run, pod_labels=labels, node_labels={devcluster.NODE_LABEL: realnode.NODE_LABEL_VALUE}
        )
        # The agent refuses to drop cache while kswapd scans (warming the file can wake it):
        # a short cooldown has the operator ask again until a drop went through.
        body["spec"]["preparation"] = {"cooldown": "5s"}
        policies.create(body)
        policies.created.remove(run)  # kept until the uninstall test: it holds the pod gated
        wait_for(
            "policy ready",
            lambda: (policies.ready(run) or {}).get("status") == "True",
            timeout_s=60,
        )
        pod = operating_pod(run, labels, memory="64Gi")
        created = api.sanitize_for_serialization(core.create_namespaced_pod("default", pod))
        assert operating.gated(created)

        def acked() -> preparationack.PrepareAck | None:
            text = node_annotations(core, node).get(names.PREPARE_ACK_ANNOTATION)
            ack = preparationack.decode(text) if text else None
            if ack is None or not ack.id.startswith(run):
                return None
            dropped = any(a.kind == "drop_caches" and a.outcome == "done" for a in ack.actions)
            return ack if dropped else None

        ack = wait_for("an acknowledgement of a cache drop", acked, timeout_s=120)
        resident_after, cached_after = resident_bytes(warm), cached_bytes()
        operator_pod = core.list_namespaced_pod(
            NAMESPACE, label_selector="app.kubernetes.io/component=operator"
        ).items[0]
        answered = f"node {node} answered preparation {ack.id}: "
        log = wait_for(
            "the operator's reading of the answer",
            lambda: (
                (text := core.read_namespaced_pod_log(operator_pod.metadata.name, NAMESPACE)).count(
                    answered
                )
                and text
            ),
            timeout_s=30,
        )
    line = next(ln for ln in log.splitlines() if answered in ln)
    print(
        f"preparation: Cached {cached_before / MIB:.0f} -> {cached_after / MIB:.0f} MiB, "
        f"warm file resident {resident_before / MIB:.0f} -> {resident_after / MIB:.0f} MiB, "
        f"ack freed {ack.freed_bytes / MIB:.0f} of {ack.bytes_wanted / MIB:.0f} MiB"
    )
    assert ack.freed_bytes > 0, ack
    assert resident_after < 0.1 * resident_before, (resident_before, resident_after)
    assert cached_after < cached_before - 0.8 * WARM_MIB * MIB
    assert f"freed {ack.freed_bytes} of {ack.bytes_wanted} B" in line, line


def workload_spec(*, memory: str) -> dict[str, Any]:
    """A pod spec running the local workload image on real-0, asking ``memory``."""
    return {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "nodeSelector": {devcluster.NODE_LABEL: realnode.NODE_LABEL_VALUE},
        "containers": [
            {
                "name": "work",
                "image": localimages.WORKLOAD_IMAGE,
                "imagePullPolicy": "Never",
                "args": ["16", "1"],
                "resources": {"requests": {"cpu": "10m", "memory": memory}},
            }
        ],
    }


def operating_pod(name: str, labels: dict[str, str], *, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": workload_spec(memory=memory),
    }


def test_inside_the_agent_pod_only_the_preparation_files_are_writable(chart: Chart) -> None:
    """The chart's preparation mode as it runs: uid 0, every capability dropped, the host's
    /proc read-only and only compact_memory and drop_caches mounted writable. Any other
    sysctl or cgroup file, through any path the pod has, refuses the write."""
    assert chart.values["agent"].get("preparation", {}).get("enabled"), "runs after the upgrade"
    refused = [
        "/host/proc/sys/vm/min_free_kbytes",
        "/host/proc/sys/vm/panic_on_oom",
        "/host/proc/sys/vm/drop_caches",  # writable only at its own mount
        "/host/proc/sys/kernel/panic",
        "/proc/sys/vm/min_free_kbytes",  # the container's own /proc
        "/proc/sys/vm/panic_on_oom",
        "/host/proc/1/root/proc/sys/vm/min_free_kbytes",  # through the host's pid 1
        "/host/proc/1/root/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # the container's own cgroup (v1)
        "/sys/fs/cgroup/memory/cgroup.procs",
        "/sys/fs/cgroup/unified/cgroup.procs",
        "/sys/fs/cgroup/memory.max",  # the same on a cgroup v2 host
        "/sys/fs/cgroup/cgroup.kill",
        "/host/sys/fs/cgroup/memory.max",
    ]
    allowed = ["/host/vm-sysctl/compact_memory"]
    with chart.node.cluster.api_client() as api:
        agent = chart.agent_pod(k8s_client.CoreV1Api(api)).metadata.name
    done = chart.kubectl(
        "exec", f"--namespace={NAMESPACE}", agent, "-c", "agent", "--",
        "python3.11", "-c", WRITE_PROBE, *allowed, *refused,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print(f"in-pod writes: {result}")
    assert result[allowed[0]] == "written", result
    got_through = {p: r for p, r in result.items() if p in refused and r == "written"}
    assert not got_through, got_through


def test_helm_uninstall_releases_every_gate(chart: Chart) -> None:
    """The held pod of the preparation test (more memory than real-0 has) is still gated;
    the chart's pre-delete hook releases it as uninstalling starts."""
    with chart.node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        held = core.list_namespaced_pod("default", label_selector="burstguard.test/held=true")
        names_held = [p.metadata.name for p in held.items]
        raw = api.sanitize_for_serialization(held.items)
        assert names_held and all(operating.gated(p) for p in raw), names_held
        start = time.monotonic()
        chart.helm("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait")
        chart.installed = False
        chart.timings["helm uninstall"] = time.monotonic() - start
        try:
            for name in names_held:
                pod = api.sanitize_for_serialization(core.read_namespaced_pod(name, "default"))
                assert not operating.gated(pod), f"{name} kept burstguard's gate"
        finally:
            for name in names_held:
                core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
