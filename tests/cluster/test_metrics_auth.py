"""``/metrics`` behind a bearer-token review on the real control plane, over TLS.

The server is the one the operator and the agent run (``exporter.serving``) with the reviewer
``--metrics-auth`` builds (``k8s.metricsreviews``). The reviewer runs as a ServiceAccount
that holds only what the chart grants with ``metrics.auth.enabled`` (``create`` on
tokenreviews and subjectaccessreviews), so the test also shows that grant is enough.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from prometheus_client import CollectorRegistry, Counter

from burstguard.exporter import serving
from burstguard.k8s import metricsreviews
from burstguard.operator import certificates, tlsreloading
from tests.conftest import ClusterFixture

REVIEWER_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    },
]
"""The rules the chart's ``metrics.auth.enabled`` adds to both identities."""
READER_RULES = [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
"""What a scraper needs (the chart documents this ClusterRole for Prometheus)."""


@dataclass
class Tokens:
    reader: str
    """A ServiceAccount bound to a ClusterRole with ``get`` on ``/metrics``."""
    stranger: str
    """A valid ServiceAccount token with no such permission."""
    reviewer: str
    """The identity the server runs as (create on the two reviews)."""


@pytest.fixture
def tokens(cluster: ClusterFixture, namespace: str) -> Iterator[Tokens]:
    api = cluster.api_client()
    core = k8s_client.CoreV1Api(api)
    rbac = k8s_client.RbacAuthorizationV1Api(api)
    bound = []
    accounts = (("reader", READER_RULES), ("stranger", None), ("reviewer", REVIEWER_RULES))
    for account, rules in accounts:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
        if rules is None:
            continue
        name = f"{namespace}-{account}"
        rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        )
        bound.append(name)

    def token(account: str) -> str:
        request = {"spec": {"expirationSeconds": 3600}}
        answer = core.create_namespaced_service_account_token(account, namespace, request)
        return str(answer.status.token)

    try:
        yield Tokens(token("reader"), token("stranger"), token("reviewer"))
    finally:
        for name in bound:
            rbac.delete_cluster_role_binding(name)
            rbac.delete_cluster_role(name)


@dataclass
class Served:
    url: str
    client_tls: ssl.SSLContext
    reviewer: metricsreviews.Reviewer


@pytest.fixture
def served(cluster: ClusterFixture, tokens: Tokens, tmp_path: Path) -> Iterator[Served]:
    reg = CollectorRegistry()
    Counter("burstguard_test_scrapes_total", "A metric to find in the output.", registry=reg)
    files = certificates.ensure(tmp_path / "certs", ["127.0.0.1"])
    reviewer = metricsreviews.Reviewer(cluster.token_client(tokens.reviewer))
    # RBAC reaches the apiserver's authorizer through an informer: wait until the reader's
    # binding is visible before any verdict is cached.
    who, _ = reviewer.identity(tokens.reader)
    assert who is not None
    deadline = time.monotonic() + 20
    while not reviewer.may_read_metrics(who)[0]:
        assert time.monotonic() < deadline, "the reader's ClusterRoleBinding never took effect"
        time.sleep(0.2)
    reviewer.reviews = 0
    server = serving.serve(
        reg,
        0,
        lambda: (True, "alive"),
        host="127.0.0.1",
        ready=lambda: (True, "ready"),
        authorize=reviewer,
        tls=tlsreloading.ReloadingCertificate(str(files.cert), str(files.key)),
    )
    client_tls = ssl.create_default_context(cafile=str(files.ca))
    try:
        yield Served(f"https://127.0.0.1:{server.port}", client_tls, reviewer)
    finally:
        server.stop()


def get(served: Served, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(served.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=served.client_tls) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def test_a_token_allowed_to_get_metrics_is_served_over_tls(served: Served, tokens: Tokens) -> None:
    status, body = get(served, "/metrics", tokens.reader)
    assert status == 200, body
    assert "burstguard_test_scrapes_total" in body


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(None, 401, id="no token"),
        pytest.param("not-a-token", 401, id="a token the apiserver does not know"),
        pytest.param("stranger", 403, id="a valid token without get on /metrics"),
    ],
)
def test_a_caller_without_the_permission_is_refused(
    served: Served, tokens: Tokens, who: str | None, expected: int
) -> None:
    token = getattr(tokens, who) if who == "stranger" else who
    status, body = get(served, "/metrics", token)
    assert status == expected, body
    assert "burstguard_test_scrapes_total" not in body


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
def test_the_probes_stay_open_without_a_token(served: Served, path: str) -> None:
    status, _ = get(served, path)
    assert status == 200


def test_repeated_scrapes_reuse_one_verdict_instead_of_asking_the_apiserver_again(
    served: Served, tokens: Tokens
) -> None:
    for _ in range(10):
        assert get(served, "/metrics", tokens.reader)[0] == 200
        assert get(served, "/metrics", tokens.stranger)[0] == 403
    assert served.reviewer.reviews == 2  # one TokenReview per token, then the cache
    assert len(served.reviewer.cache) == 2


def test_plain_http_is_not_answered_when_tls_is_on(served: Served) -> None:
    plain = served.url.replace("https://", "http://") + "/livez"
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(plain, timeout=5).read()
