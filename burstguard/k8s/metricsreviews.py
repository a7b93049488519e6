"""The apiserver's answers for ``/metrics`` authentication: a TokenReview and a
SubjectAccessReview, asked from the metrics server's threads.

The metrics servers (operator and agent) serve from threads, not from the operator's event
loop, so this uses the synchronous client: a slow review holds one scrape's thread, never
the pacer. The decision and the verdict cache are pure, in ``burstguard.core.metricsaccess``;
:class:`Reviewer` glues them to the two calls. The identity running the server needs
``create`` on ``tokenreviews`` and ``subjectaccessreviews`` (the chart grants it only when
``metrics.auth.enabled`` is set).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client import exceptions as k8s_exceptions

from burstguard.core import metricsaccess

REQUEST_TIMEOUT_S = 5.0
"""Timeout of one review call, seconds (a scrape waits for it)."""


class ReviewError(RuntimeError):
    """The apiserver could not be asked (network, timeout, an error status)."""


def _plain(api_client: Any, obj: Any) -> dict[str, Any]:
    """A returned model as plain JSON data (the client's models carry no type hints)."""
    value: dict[str, Any] = api_client.sanitize_for_serialization(obj) or {}
    return value


class Reviewer:
    """Decides whether a bearer token may read ``/metrics``, with cached verdicts."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        cache: metricsaccess.VerdictCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api_client = api_client
        self._authn = k8s_client.AuthenticationV1Api(api_client)
        self._authz = k8s_client.AuthorizationV1Api(api_client)
        self.cache = cache or metricsaccess.VerdictCache()
        self._clock = clock
        self._lock = threading.Lock()
        self.reviews = 0
        """TokenReviews asked so far (a test reads it to see the cache work)."""

    def _call(self, what: str, fn: Any, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return _plain(self._api_client, fn(body=body, _request_timeout=REQUEST_TIMEOUT_S))
        except k8s_exceptions.ApiException as exc:
            raise ReviewError(f"{what}: HTTP {exc.status} {exc.reason}") from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise ReviewError(f"{what}: {exc}") from exc

    def identity(self, token: str) -> tuple[metricsaccess.Identity | None, str]:
        """Who ``token`` is, or None and the apiserver's error."""
        self.reviews += 1
        answer = self._call(
            "TokenReview",
            self._authn.create_token_review,
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            return None, str(status.get("error") or "")
        user = status.get("user") or {}
        return (
            metricsaccess.Identity(
                user=str(user.get("username", "")),
                uid=str(user.get("uid") or ""),
                groups=tuple(user.get("groups") or ()),
            ),
            "",
        )

    def may_read_metrics(self, who: metricsaccess.Identity) -> tuple[bool, str]:
        """Whether ``who`` may ``get`` ``/metrics``, and the apiserver's reason."""
        answer = self._call(
            "SubjectAccessReview",
            self._authz.create_subject_access_review,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": who.user,
                    "uid": who.uid or None,
                    "groups": list(who.groups) or None,
                    "nonResourceAttributes": {
                        "path": metricsaccess.METRICS_PATH,
                        "verb": metricsaccess.METRICS_VERB,
                    },
                },
            },
        )
        status = answer.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def __call__(self, authorization: str | None) -> metricsaccess.Verdict:
        """The verdict for a request's ``Authorization`` header."""
        token = metricsaccess.bearer(authorization)
        if token is None:
            return metricsaccess.missing_token()
        key = metricsaccess.token_key(token)
        with self._lock:
            cached = self.cache.get(key, self._clock())
        if cached is not None:
            return cached
        try:
            who, why = self.identity(token)
            allowed, reason = self.may_read_metrics(who) if who is not None else (False, "")
        except ReviewError as exc:
            return metricsaccess.unavailable(str(exc))
        verdict = metricsaccess.decide(who, allowed if who is not None else None, why or reason)
        with self._lock:
            self.cache.put(key, verdict, self._clock())
        return verdict
