"""Clusters of their own: no control-plane process outlives its cluster, however the owner
goes away, and a start survives a port taken under it.

Each test starts a cluster of its own (5-15 s) because starting or stopping is what it checks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from burstguard.devcluster import binaries, cluster, supervising
from tests.cluster.builders import wait_for

CLI = [sys.executable, "-c", "from burstguard.cli.main import main; main()", "dev-cluster"]


def _records(directory: Path) -> list[supervising.Record]:
    state = json.loads((directory / cluster.STATE_FILE).read_text())
    return [supervising.Record.from_json(r) for r in state["processes"]]


def _leftovers(records: list[supervising.Record]) -> list[str]:
    """Components whose process, or any process of whose group, still runs."""
    return [r.name for r in records if supervising.alive(r) or supervising.group_members(r.pid)]


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180, check=check)


def test_dev_cluster_up_keeps_running_after_the_cli_exits_and_down_stops_every_process(
    control_plane_binaries: binaries.Binaries, tmp_path: Path
) -> None:
    directory = tmp_path / "dev"
    up = _cli("up", "--dir", str(directory), "--nodes", "2")
    assert "kubeconfig:" in up.stdout
    records = _records(directory)
    assert sorted(r.name for r in records) == sorted(cluster.COMPONENTS)
    try:
        assert all(supervising.alive(r) for r in records), "a component died after `up` exited"
        status = json.loads(_cli("status", "--dir", str(directory), "-o", "json").stdout)
        assert all(c["healthy"] for c in status["components"]), status
        nodes = subprocess.run(
            [
                str(control_plane_binaries.kubectl),
                "--kubeconfig",
                status["kubeconfig"],
                "get",
                "nodes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert nodes.count("kwok-node-") == 2, nodes
        assert "Ready" in nodes
    finally:
        down = _cli("down", "--dir", str(directory))
    assert "stopped" in down.stdout
    assert _leftovers(records) == []
    assert not (directory / cluster.STATE_FILE).exists()
    assert _cli("status", "--dir", str(directory), check=False).returncode == 4


OWNER = textwrap.dedent(
    """
    import sys, time
    from burstguard.devcluster import cluster
    cluster.Cluster.start(sys.argv[1])
    print("ready", flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(signal.SIGKILL, id="killed-outright"),
        pytest.param(signal.SIGTERM, id="terminated"),
    ],
)
def test_processes_of_an_attached_cluster_die_with_the_python_process_that_started_them(
    control_plane_binaries: binaries.Binaries, tmp_path: Path, how: signal.Signals
) -> None:
    directory = tmp_path / "owned"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, binaries.CACHE_ENV: str(control_plane_binaries.directory.parent)},
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        records = _records(directory)
        assert all(supervising.alive(r) for r in records)
        owner.send_signal(how)
        owner.wait(timeout=30)
        wait_for(
            "every component to exit",
            lambda: _leftovers(records) == [],
            timeout_s=supervising.STOP_GRACE_S + 10,
        )
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        for r in _records(directory) if (directory / cluster.STATE_FILE).exists() else []:
            if supervising.alive(r):
                os.killpg(r.pid, signal.SIGKILL)


def test_a_port_taken_between_picking_and_binding_is_picked_again(
    control_plane_binaries: binaries.Binaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    pick = cluster.Ports.pick
    picked: list[cluster.Ports] = []

    def pick_a_taken_port_first() -> cluster.Ports:
        ports = pick()
        if not picked:
            ports = dataclasses.replace(ports, apiserver=taken)
        picked.append(ports)
        return ports

    monkeypatch.setattr(cluster.Ports, "pick", staticmethod(pick_a_taken_port_first))
    try:
        with cluster.Cluster.start(tmp_path / "c", bins=control_plane_binaries) as started:
            assert len(picked) == 2
            assert started.ports.apiserver != taken
            assert all(h.healthy for h in started.health())
    finally:
        blocker.close()
