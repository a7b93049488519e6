"""Faults during a 300-pod paced burst, with two operator replicas electing a leader by Lease.

The leader kill runs in ``make test``; every fault runs in ``make chaos`` (marker ``chaos``),
which prints one row per fault (see ``tests.cluster.chaos``). Each test starts its own
replicas, agent, kwok nodes and policy, so the faults do not leak into each other; the
apiserver and etcd restarts restart the session's control plane in place (etcd keeps its
data), and every later test finds it healthy again.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s_client

from burstguard.devcluster import cluster as devcluster
from tests.chart import render
from tests.cluster import chaos, operating
from tests.cluster.builders import wait_for
from tests.conftest import ClusterFixture

WEBHOOK_TIMEOUT_S = 10  # the shared 2-core test machine stalls processes for seconds
HUNG_S = 2 * WEBHOOK_TIMEOUT_S + 2  # longer than both webhook calls (webhook.calls: 2)
PACING = {"releasePerSecond": 10, "burst": 10, "maxStartingPerNode": 4, "maxGateSeconds": 120}


@pytest.fixture
def api(cluster: ClusterFixture) -> Iterator[k8s_client.ApiClient]:
    with cluster.api_client() as client:
        yield client


@pytest.fixture
def scenario(
    cluster: ClusterFixture, api: k8s_client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[tuple[chaos.Scenario, chaos.Agent]]:
    """Two replicas serving the chart's webhook, an agent publishing for 10 kwok nodes, and
    an Enforce policy over them (Ready), all removed at the end."""
    run = operating.unique("chaos")
    replicas = chaos.Replicas(cluster.kubeconfig_path, tmp_path, namespace, f"{run}-leader")
    nodes = cluster.create_nodes(10)
    agent = chaos.Agent(cluster.kubeconfig_path, nodes.names, 64 * operating.GI, tmp_path / "a.log")
    policies = operating.Policies(api)
    try:
        agent.start()
        replicas.add()
        replicas.add()
        with render.registered_webhook(
            api,
            url=f"https://127.0.0.1:{replicas.port}/mutate-pods",
            ca_pem=(replicas.cert_dir / "ca.pem").read_bytes(),
            release="burstguard-chaos",
            values={"webhook": {"timeoutSeconds": WEBHOOK_TIMEOUT_S}},
        ):
            body = operating.burst_policy(
                run,
                pod_labels={chaos.RUN_LABEL: run},
                node_labels=nodes.selector,
                pacing=PACING,
                headroom={"staleAfter": "6s"},
            )
            policies.create(body)
            wait_for(
                "policy ready",
                lambda: (policies.ready(run) or {}).get("status") == "True",
                timeout_s=60,
            )
            wait_for("a leader", lambda: replicas.holder(api) != "", timeout_s=30)
            yield (
                chaos.Scenario(
                    api=api,
                    kubeconfig=cluster.kubeconfig_path,
                    namespace=namespace,
                    run=run,
                    nodes=nodes.names,
                    selector=nodes.selector,
                    replicas=replicas,
                    per_node=int(PACING["maxStartingPerNode"]),
                    max_gate_s=int(PACING["maxGateSeconds"]),
                ),
                agent,
            )
    finally:
        policies.delete_all()
        replicas.stop_all()
        agent.stop()
        with open(tmp_path / "logs.txt", "w") as out:  # kept by pytest for a failed run
            for op in replicas.all:
                out.write(f"==== {op.log_path}\n{op.log_tail(200)}\n")


def check(outcome: chaos.Outcome, *, escapes_allowed: bool = False) -> None:
    row = outcome.row
    assert row.pods == 300
    if not escapes_allowed:
        assert row.escaped == 0, row
    assert row.stranded == 0, row
    assert row.limit_violations == 0, row
    assert row.recovery_s is not None, row


def test_killing_the_leader_mid_burst_gates_every_pod_and_a_standby_takes_over(
    api: k8s_client.ApiClient, scenario: tuple[chaos.Scenario, chaos.Agent]
) -> None:
    """Must-show: 2 replicas, leader SIGKILLed during a 300-pod paced burst; the standby's
    webhook keeps gating, it takes the Lease after LeaseDuration and releases the rest."""
    sc, _ = scenario
    leader = sc.replicas.leader(api)

    def kill() -> float:
        at = time.time()
        leader.stop(kill=True)
        return at

    outcome = sc.play("leader killed (SIGKILL)", kill, after=sc.replicas.add, settle_s=1.0)
    print(
        f"\nfailover (leader kill -> first release by the new leader): "
        f"{outcome.row.recovery_s} s (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s)"
    )
    check(outcome)
    assert sc.replicas.holder(api) != leader.extra[0].split("=", 1)[1]


@pytest.mark.chaos
def test_a_rolling_upgrade_mid_burst_lets_no_pod_through_ungated(
    scenario: tuple[chaos.Scenario, chaos.Agent],
) -> None:
    """Start a new replica, stop an old one (SIGTERM: it hands the Lease back), twice."""
    sc, _ = scenario

    def roll() -> float:
        for old in sc.replicas.running():
            sc.replicas.add()
            old.stop()
        return time.time()

    check(sc.play("rolling upgrade", roll))


@pytest.mark.chaos
@pytest.mark.parametrize("component", [devcluster.APISERVER, devcluster.ETCD])
def test_a_control_plane_restart_mid_burst_strands_no_pod(
    cluster: ClusterFixture, component: str, scenario: tuple[chaos.Scenario, chaos.Agent]
) -> None:
    """SIGTERM, 3 s down, start again; the row's recovery counts from healthy again."""
    sc, _ = scenario
    check(
        sc.play(
            f"{component} restart",
            lambda: cluster.control_plane.restart(component, down_s=3.0),
            note="3 s down",
        )
    )


@pytest.mark.chaos
def test_killing_the_agent_mid_burst_strands_no_pod(
    scenario: tuple[chaos.Scenario, chaos.Agent],
) -> None:
    sc, agent = scenario

    def kill() -> float:
        agent.signal(signal.SIGKILL)
        time.sleep(3.0)
        agent.start()
        return time.time()

    check(sc.play("agent killed", kill, note="restarted after 3 s (< staleAfter 6 s)"))


@pytest.mark.chaos
def test_stale_summaries_pause_releases_and_strand_no_pod(
    scenario: tuple[chaos.Scenario, chaos.Agent],
) -> None:
    sc, agent = scenario

    def hang() -> float:
        with chaos.stopped(agent.proc, 10.0):
            pass
        return time.time()

    check(sc.play("summaries stale", hang, note="agent hung 10 s (> staleAfter 6 s)"))


@pytest.mark.chaos
def test_a_webhook_slower_than_its_timeout_fails_open_and_strands_no_pod(
    scenario: tuple[chaos.Scenario, chaos.Agent],
) -> None:
    """Every replica hangs past both admission calls' timeouts while the burst is being
    created: creations fail open (escaped > 0 is the designed last line of defence, reported,
    not hidden); nothing is stranded."""
    sc, _ = scenario
    procs = [op.proc for op in sc.replicas.running()]

    def hang() -> float:
        for proc in procs:
            assert proc is not None
            proc.send_signal(signal.SIGSTOP)
        time.sleep(HUNG_S)
        for proc in procs:
            assert proc is not None
            proc.send_signal(signal.SIGCONT)
        return time.time()

    check(
        sc.play(
            "webhook slower than timeout",
            hang,
            note=f"replicas hung {HUNG_S} s from the burst's start",
            fault_after_released=0,
        ),
        escapes_allowed=True,
    )
