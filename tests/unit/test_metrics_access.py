"""Who may read /metrics: the pure decision and the verdict cache."""

from __future__ import annotations

import pytest

from burstguard.core import metricsaccess

READER = metricsaccess.Identity("system:serviceaccount:monitoring:prometheus")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        pytest.param("Bearer abc.def", "abc.def", id="a bearer token"),
        pytest.param("bearer  abc ", "abc", id="scheme in any case, spaces trimmed"),
        pytest.param(None, None, id="no header"),
        pytest.param("", None, id="an empty header"),
        pytest.param("Basic dXNlcjpwYXNz", None, id="another scheme"),
        pytest.param("Bearer", None, id="the scheme alone"),
        pytest.param("Bearer a b", None, id="two words after the scheme"),
    ],
)
def test_only_a_bearer_header_yields_a_token(header: str | None, token: str | None) -> None:
    assert metricsaccess.bearer(header) == token


def test_an_unauthenticated_token_is_401_and_a_forbidden_identity_is_403() -> None:
    assert metricsaccess.missing_token().status == 401
    assert metricsaccess.decide(None, None, "invalid bearer token").status == 401
    refused = metricsaccess.decide(READER, False, "no RBAC policy matched")
    assert refused.status == 403
    assert READER.user in refused.reason
    assert "no RBAC policy matched" in refused.reason
    assert metricsaccess.decide(READER, True).allowed


def test_a_verdict_is_reused_until_its_ttl_and_then_asked_again() -> None:
    cache = metricsaccess.VerdictCache(ttl_s=60)
    verdict = metricsaccess.decide(READER, True)
    cache.put("k", verdict, now=100.0)
    assert cache.get("k", now=159.9) == verdict
    assert cache.get("k", now=160.0) is None
    assert len(cache) == 0


def test_the_verdict_of_an_unreachable_apiserver_is_not_cached() -> None:
    cache = metricsaccess.VerdictCache()
    cache.put("k", metricsaccess.unavailable("connection refused"), now=0.0)
    assert cache.get("k", now=0.0) is None


def test_the_cache_keeps_at_most_its_bound_dropping_the_oldest() -> None:
    cache = metricsaccess.VerdictCache(max_entries=3)
    for i in range(5):
        cache.put(str(i), metricsaccess.decide(READER, True), now=float(i))
    assert len(cache) == 3
    assert cache.get("0", now=5.0) is None
    assert cache.get("4", now=5.0) is not None


def test_the_cache_key_is_not_the_token() -> None:
    assert "secret-token" not in metricsaccess.token_key("secret-token")
