"""The Prometheus source and `burstguard recommend` on a real Prometheus scraping a real agent.

The agent (``burstguard agent``, procfs only) runs on this machine for a kwok Node of the
session's control plane and publishes its summary there; Prometheus (Debian package) scrapes
its /metrics every second with ``instance=<node>``. Nothing is mocked: the fallback is
exercised by pointing the source at a port where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client as k8s_client

from burstguard.api import names, nodesummary
from burstguard.api import policy as policy_api
from burstguard.cli import recommend
from burstguard.promsource import querying
from tests import prometheus_server
from tests.conftest import ClusterFixture


@dataclass(frozen=True)
class Scraped:
    """An agent for one kwok node, scraped by a real Prometheus."""

    node: str
    prometheus: prometheus_server.Server
    cluster: ClusterFixture

    def node_summary(self) -> nodesummary.NodeSummary | None:
        with self.cluster.api_client() as api:
            node = k8s_client.CoreV1Api(api).read_node(self.node)
        text = (node.metadata.annotations or {}).get(names.SUMMARY_ANNOTATION)
        return nodesummary.decode(text) if text else None


@pytest.fixture(scope="module")
def scraped(cluster: ClusterFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    prometheus_server.binary()
    (node,) = cluster.create_nodes(1).names
    tmp = tmp_path_factory.mktemp("promsource")
    port = prometheus_server.free_port()
    log = (tmp / "agent.log").open("wb")
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "burstguard.cli.main",
            "agent",
            f"--node-name={node}",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--metrics-port={port}",
            "--metrics-host=127.0.0.1",
            "--no-bpf",
            "--publish-interval=2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
    )
    try:
        with prometheus_server.running({node: f"127.0.0.1:{port}"}, tmp) as server:
            server.wait_for(f'burstguard_node_headroom_bytes{{instance="{node}"}}')
            yield Scraped(node, server, cluster)
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        log.close()


def source(url: str, **kw: float) -> querying.PromSource:
    return querying.PromSource(querying.Config(url=url, **kw))  # type: ignore[arg-type]


def test_live_summaries_come_from_the_agents_series(scraped: Scraped) -> None:
    summaries = source(scraped.prometheus.url).summaries(time.time())
    summary = summaries[scraped.node]
    assert summary.signal_source == "prometheus"
    assert summary.kernel_release == os.uname().release
    assert time.time() - summary.sampled_at < 10
    published = scraped.node_summary()
    assert published is not None
    # Same node, same /proc, seconds apart: the two views of headroom agree to within 1 GiB.
    assert abs(summary.headroom_bytes - published.headroom_bytes) < 2**30


def test_history_covers_the_scraped_node(scraped: Scraped) -> None:
    scraped.prometheus.wait_for("count_over_time(burstguard_node_headroom_bytes[10s]) > 3")
    now = time.time()
    histories = source(scraped.prometheus.url).history(now - 60, now, 1.0)
    (history,) = [h for h in histories if h.node == scraped.node]
    assert len(history.samples) >= 3
    assert all(s.headroom_bytes is not None for s in history.samples)
    assert history.shrinker_exposed is False


def test_a_node_without_fresh_samples_is_left_to_the_node_summary(scraped: Scraped) -> None:
    later = time.time() + querying.DEFAULT_STALENESS_S + 60
    assert scraped.node not in source(scraped.prometheus.url).summaries(later)


def test_an_unreachable_prometheus_falls_back_to_the_node_summaries(scraped: Scraped) -> None:
    down = source(f"http://127.0.0.1:{prometheus_server.free_port()}", attempts=2, backoff_s=0.01)
    published = scraped.node_summary()
    assert published is not None
    merged = querying.WithFallback(down, lambda: {scraped.node: published})
    served = merged.summaries(time.time())
    assert served.from_prometheus == frozenset()
    assert "unreachable after 2 attempts" in served.degraded_reason
    assert served.summaries[scraped.node] == published


def test_prometheus_wins_over_the_node_summary_when_it_is_fresh(scraped: Scraped) -> None:
    published = scraped.node_summary()
    assert published is not None
    merged = querying.WithFallback(source(scraped.prometheus.url), lambda: {"other": published})
    served = merged.summaries(time.time())
    assert served.from_prometheus == frozenset({scraped.node})
    assert served.summaries[scraped.node].signal_source == "prometheus"
    assert served.summaries["other"] == published


def test_recommend_produces_a_valid_policy_from_the_real_prometheus(
    scraped: Scraped, tmp_path: Path
) -> None:
    wait_for_history(scraped, since_s=120, step_s=1.0)
    result = CliRunner().invoke(
        recommend.command,
        [
            "--prometheus",
            scraped.prometheus.url,
            "--since",
            "2m",
            "--step",
            "1s",
            "--kubeconfig",
            str(scraped.cluster.kubeconfig_path),
            "-o",
            "yaml",
            "--name",
            "from-prometheus",
        ],
    )
    assert result.exit_code == 0, result.output
    body = yaml.safe_load(result.output)
    parsed = policy_api.parse(body)
    assert parsed.errors == ()
    assert parsed.spec.mode == policy_api.MODE_DRY_RUN
    # The real apiserver (CRD schema and CEL rules) accepts it too.
    with scraped.cluster.api_client() as api:
        custom = k8s_client.CustomObjectsApi(api)
        crd_path = Path(__file__).parent.parent.parent / "burstguard/api/crds/burstpolicies.yaml"
        apiext = k8s_client.ApiextensionsV1Api(api)
        try:
            apiext.create_custom_resource_definition(yaml.safe_load(crd_path.read_text()))
        except k8s_client.ApiException as exc:
            assert exc.status == 409
        deadline = time.monotonic() + 30
        while True:
            try:
                created = custom.create_cluster_custom_object(
                    names.GROUP, names.VERSION, names.POLICY_PLURAL, body
                )
                break
            except k8s_client.ApiException as exc:
                # 404 until the CRD is established.
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            assert created["spec"]["mode"] == "DryRun"
        finally:
            custom.delete_cluster_custom_object(
                names.GROUP, names.VERSION, names.POLICY_PLURAL, "from-prometheus"
            )


def wait_for_history(scraped: Scraped, since_s: float, step_s: float, least: int = 3) -> None:
    """Wait until the very query ``recommend --since`` makes returns ``least`` samples of the
    node: the module's fixture waits for one scrape only, and a test that ran right after it
    (the subset ``-k agent`` skips the slower tests in between) found no history at all."""
    deadline = time.monotonic() + 60
    while True:
        now = time.time()
        found = [
            h
            for h in source(scraped.prometheus.url).history(now - since_s, now, step_s)
            if h.node == scraped.node
        ]
        if found and sum(s.headroom_bytes is not None for s in found[0].samples) >= least:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no {least} samples of {scraped.node} in Prometheus after 60 s")
        time.sleep(0.5)


def test_recommend_reports_the_agents_node_in_the_exposure_report(scraped: Scraped) -> None:
    wait_for_history(scraped, since_s=120, step_s=1.0)
    result = CliRunner().invoke(
        recommend.command,
        ["--prometheus", scraped.prometheus.url, "--since", "2m", "--step", "1s"],
    )
    assert result.exit_code == 0, result.output
    assert "Fleet exposure: 0 of 1 nodes" in result.output
    assert scraped.node in result.output
