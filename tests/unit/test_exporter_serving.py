"""/metrics and /healthz over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import registry

from burstguard.exporter import metrics, serving


@pytest.fixture
def health() -> list[tuple[bool, str]]:
    return [(True, "ok, state Open")]


@pytest.fixture
def server(health: list[tuple[bool, str]]) -> Iterator[serving.Server]:
    reg = registry.CollectorRegistry(auto_describe=False)
    collector = metrics.ViewCollector(metrics.View(headroom=None, state="Closed", samples=3))
    reg.register(collector)
    srv = serving.serve(reg, 0, lambda: health[0], host="127.0.0.1")
    yield srv
    srv.stop()


def get(server: serving.Server, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_are_served_from_the_current_view(server: serving.Server) -> None:
    status, body = get(server, "/metrics")
    assert status == 200
    assert 'burstguard_node_state{state="Closed"} 1.0' in body
    assert "burstguard_agent_samples_total 3.0" in body


def test_healthz_follows_the_health_callback(
    server: serving.Server, health: list[tuple[bool, str]]
) -> None:
    assert get(server, "/healthz") == (200, "ok, state Open\n")
    health[0] = (False, "no sample for 30.0 s")
    assert get(server, "/healthz") == (503, "no sample for 30.0 s\n")


def test_livez_and_the_healthz_alias_follow_liveness_and_readyz_follows_readiness() -> None:
    reg = registry.CollectorRegistry(auto_describe=False)
    ready = [(False, "no summary published yet")]
    srv = serving.serve(reg, 0, lambda: (True, "ok"), host="127.0.0.1", ready=lambda: ready[0])
    try:
        assert get(srv, "/livez") == (200, "ok\n")
        assert get(srv, "/healthz") == (200, "ok\n")
        assert get(srv, "/readyz") == (503, "no summary published yet\n")
        ready[0] = (True, "ok")
        assert get(srv, "/readyz") == (200, "ok\n")
    finally:
        srv.stop()


def test_a_client_that_sends_nothing_does_not_block_livez(server: serving.Server) -> None:
    stalled = []
    try:
        for _ in range(3):
            # Connected, half a request line, then silence: the single-threaded server
            # waited on this socket and answered nobody else.
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET /metr")
            stalled.append(s)
        began = time.monotonic()
        assert get(server, "/livez")[0] == 200
        assert time.monotonic() - began < 1.0
    finally:
        for s in stalled:
            s.close()
