"""Fixtures and markers shared by every test layer.

``cluster`` is one real local control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok) per pytest session, started the first time a test asks for it and
stopped at the end of the session; tests that do not ask never pay for it. Tests share it, so
each one works in its own namespace (``namespace`` fixture) and on its own kwok nodes
(``cluster.create_nodes`` names them uniquely and labels them ``burstguard.test/group=<id>``,
which tests use as a nodeSelector).

Binaries missing: the fixture fails under CI (``CI=true``: ``make setup`` must have built
them) and skips elsewhere, both with the hint to run ``make setup``. Set
``BURSTGUARD_TEST_CLUSTER_DIR`` to the directory of a running ``burstguard dev-cluster up``
to reuse it instead of starting one (it is left running).

Every test under ``tests/cluster/`` gets the ``cluster`` marker (``-m 'not cluster'`` skips
the layer).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from burstguard.devcluster import binaries
from burstguard.devcluster import cluster as devcluster

if TYPE_CHECKING:  # the kubernetes client takes a second to import: only cluster tests pay it
    from kubernetes import client as k8s_client

CLUSTER_TESTS = Path(__file__).parent / "cluster"
FUZZ_TESTS = Path(__file__).parent / "fuzz"
REUSE_ENV = "BURSTGUARD_TEST_CLUSTER_DIR"
GROUP_LABEL = "burstguard.test/group"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fuzz example counts and the chaos rows recorded in this run."""
    fuzz = sys.modules.get("tests.fuzz.counting")
    if fuzz is not None and fuzz.COUNTS:
        terminalreporter.section("fuzz: examples run per target")
        for line in fuzz.summary():
            terminalreporter.write_line(line)
    chaos = sys.modules.get("tests.cluster.chaos")
    rows = getattr(chaos, "ROWS", None)
    if chaos is None or not rows:
        return
    terminalreporter.section("chaos: faults during a 300-pod paced burst")
    terminalreporter.write_line(chaos.table(rows))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/cluster/ with ``cluster``, under tests/fuzz/ with ``fuzz``."""
    for item in items:
        if item.path.is_relative_to(CLUSTER_TESTS):
            item.add_marker(pytest.mark.cluster)
        if item.path.is_relative_to(FUZZ_TESTS):
            item.add_marker(pytest.mark.fuzz)


@dataclass
class ClusterFixture:
    """The session's control plane as tests see it."""

    control_plane: devcluster.Cluster
    """The launcher object (ports, PKI, logs, ``issue_serving_cert``...)."""
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def kubeconfig_path(self) -> Path:
        """Admin kubeconfig."""
        return self.control_plane.kubeconfig_path

    def api_client(self) -> k8s_client.ApiClient:
        """A new synchronous kubernetes ApiClient for the admin (close it, or use ``with``)."""
        from kubernetes import config as k8s_config  # noqa: PLC0415 (lazy, see above)

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig_path))

    def token_client(self, token: str) -> k8s_client.ApiClient:
        """A new ApiClient that authenticates with a bearer ``token`` only (no admin cert)."""
        from kubernetes import client  # noqa: PLC0415 (lazy, see above)

        configuration = client.Configuration()
        configuration.host = self.control_plane.server
        configuration.ssl_ca_cert = str(self.control_plane.ca_path)
        configuration.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(configuration)

    def create_nodes(
        self, count: int, *, labels: Mapping[str, str] | None = None, **kwargs: Any
    ) -> NodeGroup:
        """``count`` schedulable kwok nodes with unique names and a group label of their own.

        Other keyword arguments go to ``Cluster.create_nodes`` (cpu, memory, pods, taint...).
        """
        group = f"g{next(self._ids)}-{uuid.uuid4().hex[:6]}"
        names = self.control_plane.create_nodes(
            count, prefix=f"kwok-{group}-", labels={GROUP_LABEL: group, **(labels or {})}, **kwargs
        )
        return NodeGroup(tuple(names), group)


@dataclass(frozen=True)
class NodeGroup:
    """kwok nodes made by one ``create_nodes`` call."""

    names: tuple[str, ...]
    """Node names."""
    group: str
    """Value of their ``burstguard.test/group`` label."""

    @property
    def selector(self) -> dict[str, str]:
        """A nodeSelector matching exactly these nodes."""
        return {GROUP_LABEL: self.group}


@pytest.fixture(scope="session")
def control_plane_binaries() -> binaries.Binaries:
    """The built control-plane binaries; fails under CI and skips elsewhere when missing."""
    try:
        return binaries.locate()
    except binaries.MissingBinariesError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the control plane built: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: binaries.Binaries
) -> Iterator[ClusterFixture]:
    """One real local control plane for the whole session."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        existing = devcluster.Cluster.attach(reuse)
        if not existing.is_running():
            pytest.fail(f"{REUSE_ENV}={reuse}: no running dev-cluster there")
        yield ClusterFixture(existing)
        return
    directory = tmp_path_factory.mktemp("devcluster")
    started = devcluster.Cluster.start(directory, bins=control_plane_binaries)
    try:
        yield ClusterFixture(started)
    finally:
        started.stop()
        shutil.rmtree(started.layout.etcd_data, ignore_errors=True)


@pytest.fixture
def namespace(cluster: ClusterFixture) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    from kubernetes import client as k8s_client  # noqa: PLC0415 (lazy, see above)

    name = f"t-{uuid.uuid4().hex[:10]}"
    with cluster.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name}})
        try:
            yield name
        finally:
            core.delete_namespace(name)
