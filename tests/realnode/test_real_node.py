"""Node real-0 for real: Ready, left alone by kwok, runs plain and paced pods, pulls nothing,
and leaves nothing behind when removed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client

from burstguard.api import names
from burstguard.devcluster import binaries, localimages, realnode
from burstguard.devcluster import cluster as devcluster
from tests.cluster import operating
from tests.cluster.builders import wait_for
from tests.conftest import ClusterFixture
from tests.realnode.conftest import RealNodeFixture, real_node_unavailable, skip_or_fail

GI = 2**30


def workload_pod(name: str, node: str | None, *, mib: int = 16, hold_s: int = 1) -> dict[str, Any]:
    """A workload pod; ``node`` pins it by nodeName, None leaves placement to the scheduler."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "work",
                "image": localimages.WORKLOAD_IMAGE,
                "imagePullPolicy": "Never",
                "args": [str(mib), str(hold_s)],
                "resources": {"requests": {"cpu": "10m", "memory": f"{mib + 16}Mi"}},
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def phase(core: k8s_client.CoreV1Api, name: str, namespace: str = "default") -> str:
    return str(core.read_namespaced_pod(name, namespace).status.phase)


def test_real_0_is_ready_runs_the_built_kubelet_and_kwok_does_not_manage_it(
    real_node: RealNodeFixture,
) -> None:
    with real_node.cluster.api_client() as api:
        node = k8s_client.CoreV1Api(api).read_node(real_node.node_name)
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True" and ready[0].reason == "KubeletReady"
    assert node.status.node_info.kubelet_version == binaries.KUBE_VERSION
    assert node.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert devcluster.KWOK_ANNOTATION not in (node.metadata.annotations or {})
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == real_node.node.instance.node_ip


def test_a_plain_pod_runs_to_succeeded_on_real_0_and_its_log_is_readable(
    real_node: RealNodeFixture,
) -> None:
    name = f"plain-{uuid.uuid4().hex[:6]}"
    with real_node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespaced_pod("default", workload_pod(name, real_node.node_name))
        wait_for("pod Succeeded", lambda: phase(core, name) == "Succeeded", timeout_s=60)
        log = core.read_namespaced_pod_log(name, "default")
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert "workload start_uptime_s=" in log and "faulted_mib=16" in log


def test_a_host_network_pod_runs_to_succeeded_on_real_0(real_node: RealNodeFixture) -> None:
    """How the chart's operator and agent run there: in the host's network namespace."""
    name = f"hostnet-{uuid.uuid4().hex[:6]}"
    pod = workload_pod(name, real_node.node_name, hold_s=0)
    pod["spec"]["hostNetwork"] = True
    with real_node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespaced_pod("default", pod)
        wait_for("pod Succeeded", lambda: phase(core, name) == "Succeeded", timeout_s=60)
        assert core.read_namespaced_pod(name, "default").status.pod_ip == (
            real_node.node.instance.node_ip
        )
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_a_paced_pod_goes_through_the_webhook_and_the_pacer_to_succeeded_on_real_0(
    real_node: RealNodeFixture, tmp_path: Path
) -> None:
    """The agent does not run here: the test publishes real-0's summary as the agent would."""
    run = operating.unique("paced")
    with (
        real_node.cluster.api_client() as api,
        operating.running(operating.OperatorProcess(real_node.cluster.kubeconfig_path, tmp_path)),
    ):
        core = k8s_client.CoreV1Api(api)
        policies = operating.Policies(api)
        operating.publish(core, real_node.node_name, 8 * GI)
        policies.create(
            operating.burst_policy(
                run,
                pod_labels={"burstguard.test/run": run},
                node_labels={devcluster.NODE_LABEL: realnode.NODE_LABEL_VALUE},
            )
        )
        try:
            wait_for(
                "policy ready",
                lambda: (policies.ready(run) or {}).get("status") == "True",
                timeout_s=30,
            )
            pod = workload_pod(run, None)
            pod["metadata"]["labels"] = {"burstguard.test/run": run}
            pod["spec"]["nodeSelector"] = {devcluster.NODE_LABEL: realnode.NODE_LABEL_VALUE}
            created = api.sanitize_for_serialization(core.create_namespaced_pod("default", pod))
            assert operating.gated(created), "the webhook did not gate the pod"
            wait_for("pod Succeeded", lambda: phase(core, run) == "Succeeded", timeout_s=90)
            done = core.read_namespaced_pod(run, "default")
            assert done.spec.node_name == real_node.node_name
            assert not any(
                g.name == names.SCHEDULING_GATE for g in done.spec.scheduling_gates or []
            )
        finally:
            core.delete_namespaced_pod(run, "default", grace_period_seconds=0)
            policies.delete_all()


def test_the_runtime_never_tried_to_pull_an_image(real_node: RealNodeFixture) -> None:
    name = f"nopull-{uuid.uuid4().hex[:6]}"
    with real_node.cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespaced_pod("default", workload_pod(name, real_node.node_name, hold_s=0))
        wait_for("pod Succeeded", lambda: phase(core, name) == "Succeeded", timeout_s=60)
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    log = real_node.node.containerd_log.read_text(errors="replace")
    assert "RunPodSandbox" in log, "the containerd log does not show CRI activity at all"
    assert "PullImage" not in log


def _net_namespaces_in_use() -> set[str]:
    """Every network namespace a process is in or a mount (in any mount namespace) holds."""
    found: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found.add(os.readlink(entry / "ns" / "net"))
            for line in (entry / "mountinfo").read_text().splitlines():
                if " - nsfs " in line and "net:[" in line:
                    found.add(line.split()[3].strip("/"))
        except OSError:
            continue
    return found


def test_a_second_real_node_coexists_and_down_leaves_no_process_mount_netns_or_cgroup(
    real_node: RealNodeFixture, tmp_path: Path
) -> None:
    """A second cluster with its own real node beside the session's, then removed."""
    why = real_node_unavailable()
    if why:
        skip_or_fail(why)
    second = devcluster.Cluster.start(tmp_path / "second", bins=binaries.locate())
    try:
        node = realnode.RealNode.start(second)
        inst, root, mount_ns = node.instance, node.layout.root, node.mount_ns
        assert inst.bridge != real_node.node.instance.bridge
        assert inst.subnet != real_node.node.instance.subnet
        with ClusterFixture(second).api_client() as api:
            core = k8s_client.CoreV1Api(api)
            core.create_namespaced_pod("default", workload_pod("hold", node.name, hold_s=60))
            wait_for("pod Running", lambda: phase(core, "hold") == "Running", timeout_s=60)
        pod_pids = realnode._cgroup_pids(inst.cgroup_root)
        assert pod_pids, "no process in the node's cgroup root while a pod runs"
        pod_netns = {os.readlink(f"/proc/{p}/ns/net") for p in pod_pids}
        assert pod_netns - {os.readlink("/proc/self/ns/net")}, "the pod has no netns of its own"
        pod_netns -= {os.readlink("/proc/self/ns/net")}
        assert pod_netns <= _net_namespaces_in_use()

        left = node.stop()

        assert left == []
        assert not any(realnode.supervising.alive(r) for r in node.records)
        assert realnode._pids_in_mount_ns(mount_ns) == []
        assert realnode._cgroup_pids(inst.cgroup_root) == []
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(root) not in mounts and str(node.layout.socket_dir) not in mounts
        assert not (pod_netns & _net_namespaces_in_use()), "a pod network namespace survived"
        assert not Path("/sys/class/net", inst.bridge).exists()
        assert realnode.iptables_rules_mentioning(inst.bridge, inst.subnet) == []
        assert not any(d.exists() for d in realnode._cgroup_dirs(inst.cgroup_root))
        assert not root.exists()
        assert not node.layout.socket_dir.exists()
    finally:
        second.stop()
