"""metrics.auth and metrics.tls: off by default, and when on, both workloads get the flags,
the certificate, exactly the review permissions, and a scrape configuration that works.

That the flags do what they say on a real apiserver is tests/cluster/test_metrics_auth.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart import render

Json = dict[str, Any]
REVIEWS = {
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
}
PROTECTED = {"metrics": {"auth": {"enabled": True}, "tls": {"enabled": True, "secretName": "m"}}}


def rendered(values: Json | None = None) -> list[Json]:
    render.require_tools()
    return render.objects(values)


def review_rules(docs: list[Json], component: str) -> set[tuple[str, str]]:
    role = render.pick(docs, "ClusterRole", f"burstguard-{component}")
    return {
        (group, resource)
        for rule in role["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        if (group, resource) in REVIEWS
    }


def containers(docs: list[Json]) -> dict[str, Json]:
    return {
        kind: render.pick(docs, kind)["spec"]["template"]["spec"]["containers"][0]
        for kind in ("Deployment", "DaemonSet")
    }


def test_by_default_metrics_are_plain_and_no_identity_may_review_tokens() -> None:
    docs = rendered()
    for component in ("operator", "agent"):
        assert review_rules(docs, component) == set()
    for container in containers(docs).values():
        assert not [a for a in container["args"] if a.startswith("--metrics-auth")]
        assert not [a for a in container["args"] if a.startswith("--metrics-cert")]
    with pytest.raises(LookupError):
        render.pick(docs, "ClusterRole", "burstguard-metrics-reader")


def test_with_auth_and_tls_both_workloads_review_tokens_and_serve_https() -> None:
    docs = rendered(PROTECTED)
    for component in ("operator", "agent"):
        assert review_rules(docs, component) == REVIEWS
    for kind, container in containers(docs).items():
        assert "--metrics-auth" in container["args"], kind
        assert any(a.startswith("--metrics-cert-file=") for a in container["args"]), kind
        mounts = {m["name"] for m in container["volumeMounts"]}
        assert "metrics-tls" in mounts, kind
    agent = containers(docs)["DaemonSet"]
    assert agent["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert agent["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    reader = render.pick(docs, "ClusterRole", "burstguard-metrics-reader")
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


def test_the_service_monitors_send_a_token_over_https_when_metrics_are_protected() -> None:
    docs = rendered(
        {**PROTECTED, "metrics": {**PROTECTED["metrics"], "serviceMonitor": {"enabled": True}}}
    )
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    for monitor in monitors:
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["scheme"] == "https"
        assert endpoint["bearerTokenFile"].endswith("/serviceaccount/token")


def test_tls_without_a_secret_name_is_refused_with_a_message() -> None:
    with pytest.raises(Exception, match=r"metrics\.tls\.secretName"):
        rendered({"metrics": {"tls": {"enabled": True}}})
