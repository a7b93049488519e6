"""/metrics and /healthz over real HTTP on 127.0.0.1."""

from __future__ import annotations

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
