"""The apiserver address a pod is given by its environment, as the operator's kopf login uses it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from burstguard.k8s.apiclient import in_cluster_server
from burstguard.operator import handlers


def test_the_host_and_port_a_host_network_pod_is_given_make_the_server_url() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_server(env) == "https://127.0.0.1:6443"


def test_an_ipv6_service_address_is_bracketed() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(env) == "https://[fd00::1]:443"


def test_a_missing_port_means_443_and_a_missing_host_means_no_in_cluster_address() -> None:
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "https://10.0.0.1:443"
    assert in_cluster_server({"KUBERNETES_SERVICE_PORT": "443"}) is None
    assert in_cluster_server({}) is None


def test_the_operators_kopf_login_uses_the_pods_apiserver_address_not_the_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf's own service-account login dials kubernetes.default.svc, which a host-network pod
    with no cluster DNS cannot resolve (the operator crash-looped on real-0)."""

    def service_account(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t")

    monkeypatch.setattr(kopf, "login_with_service_account", service_account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "40123")
    memo = kopf.Memo(options=SimpleNamespace(kubeconfig=None))
    info = handlers.login(memo)
    assert info is not None and info.server == "https://127.0.0.1:40123" and info.token == "t"
