"""Who may read ``/metrics``: the bearer token's verdict, and a short cache of verdicts.

The model is kube-rbac-proxy's, done in process: the scraper sends its ServiceAccount token,
the apiserver says who the token belongs to (a TokenReview) and whether that identity may
``get`` the non-resource URL ``/metrics`` (a SubjectAccessReview). This module holds only the
decision and the cache; the reviews themselves are calls to the apiserver and live in
``burstguard.k8s.metricsreviews``.

Verdicts are cached for a short time (:data:`VERDICT_TTL_S`), keyed by a hash of the token,
so a Prometheus scraping every second costs the apiserver two reviews a minute per scraper,
not two a second. A revoked permission is therefore honoured within that TTL, the same
trade-off kube-rbac-proxy makes with its ``--auth-token-audiences`` cache. Failed lookups
(the apiserver unreachable) are not cached: the next scrape asks again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

VERDICT_TTL_S: Final = 60.0
"""How long a token's verdict is reused, seconds."""
MAX_CACHED: Final = 256
"""Most tokens whose verdicts are kept (scrapers are few; the bound stops a token flood)."""
METRICS_PATH: Final = "/metrics"
"""The non-resource URL the SubjectAccessReview asks about."""
METRICS_VERB: Final = "get"
"""The verb the SubjectAccessReview asks about."""


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to, as the TokenReview answered."""

    user: str
    """``status.user.username`` (``system:serviceaccount:<ns>:<name>`` for a ServiceAccount)."""
    uid: str = ""
    """``status.user.uid``."""
    groups: tuple[str, ...] = ()
    """``status.user.groups``."""


@dataclass(frozen=True)
class Verdict:
    """The answer to one request: an HTTP status and why."""

    status: int
    """200 served, 401 no or bad token, 403 a valid token without the permission, 503 the
    apiserver could not be asked."""
    reason: str
    """One line for the response body and the log."""

    @property
    def allowed(self) -> bool:
        """The request is served."""
        return self.status == 200


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when absent or other."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def token_key(token: str) -> str:
    """The cache key of a token (its hash: the cache never holds a usable credential)."""
    return hashlib.sha256(token.encode()).hexdigest()


def missing_token() -> Verdict:
    """No ``Authorization: Bearer`` header."""
    return Verdict(401, "a bearer token is required")


def decide(identity: Identity | None, allowed: bool | None, why: str = "") -> Verdict:
    """The verdict from the two reviews.

    ``identity`` None: the TokenReview did not authenticate the token (401). ``allowed``
    None: the SubjectAccessReview was not asked (only with no identity). ``why`` is the
    apiserver's reason or error, kept in the message.
    """
    if identity is None:
        return Verdict(401, f"token not authenticated{': ' + why if why else ''}")
    if not allowed:
        return Verdict(
            403,
            f"{identity.user} may not {METRICS_VERB} {METRICS_PATH}{': ' + why if why else ''}",
        )
    return Verdict(200, f"{identity.user} may {METRICS_VERB} {METRICS_PATH}")


def unavailable(error: str) -> Verdict:
    """The apiserver could not be asked: refuse this scrape, cache nothing."""
    return Verdict(503, f"cannot review the token: {error}")


@dataclass
class VerdictCache:
    """Verdicts by token hash, each good for ``ttl_s`` from when it was decided.

    Time is an argument (``now``, seconds on any monotonic clock), so the cache is pure
    bookkeeping; the caller serialises access (one lock in the server).
    """

    ttl_s: float = VERDICT_TTL_S
    """How long a verdict is reused, seconds."""
    max_entries: int = MAX_CACHED
    """Most verdicts kept; the oldest are dropped first."""

    def __post_init__(self) -> None:
        self._entries: dict[str, tuple[float, Verdict]] = {}

    def get(self, key: str, now: float) -> Verdict | None:
        """The cached verdict for ``key`` if it is younger than the TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        decided, verdict = entry
        if now - decided >= self.ttl_s or now < decided:
            del self._entries[key]
            return None
        return verdict

    def put(self, key: str, verdict: Verdict, now: float) -> None:
        """Remember ``verdict`` (a 503 is never remembered: the next request asks again)."""
        if verdict.status == 503:
            return
        self._entries.pop(key, None)
        self._entries[key] = (now, verdict)
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)
