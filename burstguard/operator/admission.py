"""The pod-gating webhook server: aiohttp over TLS, answering AdmissionReviews.

Why not kopf's ``@kopf.on.mutate``: kopf turns a merge-style patch into a JSON patch of its
own, so the pure JSON-patch ops of ``core.gating`` could not be returned as computed, and
kopf's managed webhook configuration fixes ``timeoutSeconds: 30`` with no namespace
selector, while burstguard needs a short timeout and kube-system excluded. A plain aiohttp
handler is also the shortest path on a hot request path (p99 goal ≤ 10 ms added to pod
CREATE): check, decode, call ``gating.review`` with the already-parsed policies, encode.

Why a thread of its own: on the operator's event loop an answer waited for whatever else
held the loop, a watch batch of a thousand pods or a pacer tick, and the webhook's p99 was
89 ms while its handler took 2 ms. On its own event loop in its own thread it waits at most
one GIL switch interval (5 ms) for the rest of the operator. It reads the policy and
namespace stores, which their informers replace whole (never mutate in place), so a reader
on another thread sees either the old or the new value.

The admission path is bounded: ``Content-Type: application/json``, at most
:data:`MAX_BODY_BYTES` (a pod fits: the apiserver's own request limit is 3 MiB and etcd's
object limit 1.5 MiB, and pods are KiB), parsed with orjson (a 1 MiB body in about 2 ms,
a third of ``json.loads``), and the review's ``apiVersion``/``kind``/``request.uid`` are
checked before use. A request that breaks these gets a 400 naming the problem: the
apiserver never sends one, and a 400 under ``failurePolicy: Ignore`` still admits.
An exception while deciding answers "allowed" without a patch (fail open), never a 500.

Probes on the same port: ``/livez`` (the server answers), ``/healthz`` (its alias, for
older probe configurations) and ``/readyz`` (the served certificate is the one on disk).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson
from aiohttp import web

from burstguard.api import policy as policy_api
from burstguard.core import gating
from burstguard.exporter import operator_metrics as metrics
from burstguard.operator import tlsreloading

log = logging.getLogger(__name__)

MUTATE_PATH: Final = "/mutate-pods"
MAX_BODY_BYTES: Final = 1 << 20
"""Largest AdmissionReview accepted, bytes."""
REVIEW_API_VERSION: Final = "admission.k8s.io/v1"
CERT_POLL_S: Final = 1.0
"""How often the certificate files are compared with the served ones, seconds."""


def envelope_error(body: object) -> str | None:
    """Why ``body`` is not an AdmissionReview this server can answer, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if body.get("apiVersion") != REVIEW_API_VERSION:
        return f"apiVersion must be {REVIEW_API_VERSION}, not {body.get('apiVersion')!r}"
    if body.get("kind") != "AdmissionReview":
        return f"kind must be AdmissionReview, not {body.get('kind')!r}"
    request = body.get("request")
    if not isinstance(request, dict):
        return "request must be an object"
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        return "request.uid must be a non-empty string"
    return None


def _bad_request(reason: str) -> web.Response:
    metrics.WEBHOOK_REQUESTS.labels("rejected").inc()
    return web.Response(status=400, text=reason + "\n")


class AdmissionServer:
    """Serves ``POST /mutate-pods`` and the probes over TLS, on a thread of its own."""

    def __init__(
        self,
        *,
        policies: Callable[[], Sequence[policy_api.BurstPolicy]],
        namespace_labels: Callable[[str], Mapping[str, str]],
        excluded_namespaces: frozenset[str],
        decide: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        keepalive: bool = False,
    ) -> None:
        """``decide`` replaces the gating decision (the benchmark's null webhook).

        ``keepalive`` False answers every review with ``Connection: close``. The apiserver
        keeps idle connections to a webhook and, when the replica behind them is killed, sends
        the next reviews down them: each fails (reset, broken pipe) and, with failurePolicy
        Ignore, admits the pod ungated; a POST is not retried. A fresh connection per review
        reaches a live replica; the cost is one loopback/cluster TLS handshake per pod."""
        self._keepalive = keepalive
        self._policies = policies
        self._namespace_labels = namespace_labels
        self._excluded = excluded_namespaces
        self._decide = decide or self._review
        self.tls: tlsreloading.ReloadingCertificate | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._poller: asyncio.Task[None] | None = None

    def _review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        answer, decision = gating.review(
            body, self._namespace_labels, self._policies(), self._excluded
        )
        if decision.ops and not decision.dry_run:
            log.debug("gated pod for policy %s", decision.policy)
        return answer

    async def _mutate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if request.content_type != "application/json":
            return _bad_request(
                f"Content-Type must be application/json, not {request.content_type}"
            )
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _bad_request(f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _bad_request(f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _bad_request(f"body is not JSON: {exc}")
        error = envelope_error(body)
        if error is not None:
            return _bad_request(error)
        try:
            answer = self._decide(body)
            result = "gated" if "patch" in answer.get("response", {}) else "skipped"
        except Exception as exc:  # fail open, always answer
            log.warning("admission error, allowing unchanged: %s", exc)
            answer = {
                "apiVersion": gating.REVIEW_VERSION,
                "kind": "AdmissionReview",
                "response": {"uid": gating.request_uid(body), "allowed": True},
            }
            result = "error"
        metrics.WEBHOOK_REQUESTS.labels(result).inc()
        metrics.WEBHOOK_DURATION.observe(time.perf_counter() - started)
        response = web.Response(body=orjson.dumps(answer), content_type="application/json")
        if not self._keepalive:
            response.force_close()
        return response

    async def _livez(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def ready(self) -> tuple[bool, str]:
        """Readiness: listening, with the certificate that is on disk."""
        if self._runner is None or self.tls is None:
            return False, "webhook not listening"
        return self.tls.matches_files()

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, message = self.ready()
        return web.Response(status=200 if ok else 503, text=message + "\n")

    async def _poll_certificate(self) -> None:
        while True:
            await asyncio.sleep(CERT_POLL_S)
            if self.tls is not None:
                self.tls.poll()

    async def _listen(self, host: str, port: int, reuse_port: bool = False) -> None:
        assert self.tls is not None
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(MUTATE_PATH, self._mutate)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/healthz", self._livez)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner,
            host,
            port,
            ssl_context=self.tls.context,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        await site.start()
        self._runner = runner
        self._poller = asyncio.get_running_loop().create_task(self._poll_certificate())

    def _serve(
        self,
        host: str,
        port: int,
        reuse_port: bool,
        started: threading.Event,
        errors: list[BaseException],
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen(host, port, reuse_port))
        except BaseException as exc:
            errors.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            if self._poller is not None:
                self._poller.cancel()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
                self._runner = None
            loop.close()

    async def start(
        self,
        *,
        host: str,
        port: int,
        certfile: str,
        keyfile: str,
        client_ca: str | None = None,
        own_thread: bool = True,
        reuse_port: bool = False,
    ) -> None:
        """Listen on ``host:port`` with the given serving certificate (reloaded on change).

        ``client_ca``: require client certificates signed by it (the apiserver's, mTLS).
        ``own_thread=False`` serves on the caller's event loop (the benchmark's comparison).
        ``reuse_port``: share the port with other replicas on this host.
        """
        self.tls = tlsreloading.ReloadingCertificate(certfile, keyfile, client_ca)
        if not own_thread:
            await self._listen(host, port, reuse_port)
            return
        started = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve,
            args=(host, port, reuse_port, started, errors),
            name="webhook",
            daemon=True,
        )
        self._thread.start()
        await asyncio.to_thread(started.wait)
        if errors:
            self._thread.join()
            raise errors[0]
        log.info("webhook listening on https://%s:%d%s", host, port, MUTATE_PATH)

    async def stop(self) -> None:
        """Stop listening."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 10)
        elif self._runner is not None:
            if self._poller is not None:
                self._poller.cancel()
            await self._runner.cleanup()
            self._runner = None
        self._loop = None
        self._thread = None
