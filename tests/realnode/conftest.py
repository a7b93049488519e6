"""The ``real_node`` fixture: one control plane of its own plus node ``real-0`` for the session.

Other test layers reuse it (``from tests.realnode.conftest import RealNodeFixture``, or just ask
for ``real_node`` below ``tests/realnode/``; import the fixture into another conftest to share
it). Its control plane is not the ``cluster`` fixture's: pods of kwok tests must never land on
a real kubelet that lacks their images.

Skips with the reason when a kubelet truly cannot run here (not root, nothing built); under
``CI=true`` that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from burstguard.devcluster import binaries, localimages, realnode
from burstguard.devcluster import cluster as devcluster
from tests.conftest import ClusterFixture


@dataclass
class RealNodeFixture:
    """The session's control plane and its real node."""

    cluster: ClusterFixture
    """The control plane (``api_client()``, ``kubeconfig_path``, kwok ``create_nodes``)."""
    node: realnode.RealNode
    """The running node (layout, logs, instance names, ``leftovers()``)."""

    @property
    def node_name(self) -> str:
        """``real-0``."""
        return self.node.name

    def import_image(self, archive: Path) -> str:
        """Import an ``oci-archive`` (``burstguard.images.oci.write``) into the node's runtime."""
        return self.node.import_image(archive)


def real_node_unavailable() -> str | None:
    """Why no real node can run here (control plane or kubelet missing, not root), or None."""
    missing = binaries.default().missing()
    if missing:
        return f"control plane not built ({', '.join(missing)}): run `make setup`"
    return realnode.unavailable()


def skip_or_fail(reason: str) -> None:
    """Skip with the reason; under CI=true fail, since CI must run the real node."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the real node: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeFixture]:
    """A control plane and node ``real-0`` for the whole session, removed at its end."""
    why = real_node_unavailable()
    if why:
        skip_or_fail(why)
    directory = tmp_path_factory.mktemp("realnode-cluster")
    started = devcluster.Cluster.start(directory, bins=binaries.locate())
    try:
        node = realnode.RealNode.start(started)
        try:
            yield RealNodeFixture(ClusterFixture(started), node)
        finally:
            left = node.stop()
            assert not left, f"the real node left: {left}"
    finally:
        started.stop()
        shutil.rmtree(started.layout.etcd_data, ignore_errors=True)


__all__ = ["RealNodeFixture", "localimages", "real_node", "real_node_unavailable", "skip_or_fail"]
