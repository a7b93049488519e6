"""HTTP server for ``/metrics`` (Prometheus text) and the probes ``/livez``, ``/readyz``.

prometheus_client's WSGI app renders the registry; a small WSGI wrapper answers the probes
from callbacks:

- ``/livez`` (and ``/healthz``, its alias for older probe configurations): the process
  answers and its sampling loop is not stuck. A degraded signal source does not fail it.
- ``/readyz``: the agent does its job, a summary was published recently.

The server is threaded (one daemon thread per connection, each with a socket timeout), so a
slow or stalled client, a scrape of a large registry or a probe never waits for another: with
the single-threaded ``wsgiref`` server one client that opened a connection and sent nothing
held ``/healthz`` until the kubelet's liveness probe restarted the agent. :func:`serve`
returns the server so the agent can shut it down.

Optional protection of ``/metrics`` (the probes always stay open: the kubelet calls them
without credentials):

- ``authorize``: a callable given the request's ``Authorization`` header that returns a
  :class:`burstguard.core.metricsaccess.Verdict` (``burstguard.k8s.metricsreviews.Reviewer``
  asks the apiserver, kube-rbac-proxy style); a refused request gets its 401/403/503.
- ``tls``: serve HTTPS with this context source. The handshake runs in the connection's own
  thread (under the same socket timeout), so a client that opens a connection and stalls the
  handshake holds only its thread. ``tls.poll()`` runs at most once a second on a new
  connection, so a renewed certificate is served without a restart.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol
from wsgiref import simple_server

from prometheus_client import exposition, registry

from burstguard.core import metricsaccess

CLIENT_TIMEOUT_S: Final = 10.0
"""A connection that sends nothing for this long is closed, seconds."""

TLS_POLL_S: Final = 1.0
"""Least time between two checks of the certificate files, seconds."""

Check = Callable[[], tuple[bool, str]]
Authorize = Callable[[str | None], metricsaccess.Verdict]
"""The ``Authorization`` header (None when absent) -> the verdict for ``/metrics``."""


class Tls(Protocol):
    """A server TLS context that follows its files (``operator.tlsreloading``)."""

    context: ssl.SSLContext

    def poll(self) -> bool:
        """Reload when the files changed."""
        ...


class _QuietHandler(simple_server.WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S

    def setup(self) -> None:
        """Finish the TLS handshake here, in this connection's thread, under its timeout."""
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Do not log every scrape."""


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    block_on_close = False
    tls: Tls | None = None
    _polled = 0.0

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        if self.tls is None:
            return conn, addr
        now = time.monotonic()
        if now - self._polled >= TLS_POLL_S:
            self._polled = now
            self.tls.poll()
        wrapped = self.tls.context.wrap_socket(
            conn, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake or a vanished client is the client's problem: no traceback."""


@dataclass
class Server:
    """A running metrics server."""

    httpd: simple_server.WSGIServer
    """The server."""
    thread: threading.Thread
    """Its accepting thread."""

    @property
    def port(self) -> int:
        """Bound port (useful with port 0)."""
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _probe(check: Check, start_response: Callable[..., Any]) -> Iterable[bytes]:
    ok, message = check()
    start_response(
        "200 OK" if ok else "503 Service Unavailable",
        [("Content-Type", "text/plain; charset=utf-8")],
    )
    return [(message + "\n").encode()]


_STATUS_LINES: Final = {
    401: "401 Unauthorized",
    403: "403 Forbidden",
    503: "503 Service Unavailable",
}


def _refuse(verdict: metricsaccess.Verdict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if verdict.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="burstguard metrics"'))
    start_response(_STATUS_LINES.get(verdict.status, f"{verdict.status} Refused"), headers)
    return [(verdict.reason + "\n").encode()]


def app(
    reg: registry.CollectorRegistry,
    live: Check,
    ready: Check | None = None,
    authorize: Authorize | None = None,
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """WSGI app: the probes from ``live()``/``ready()``, everything else from the registry
    (for a caller ``authorize`` lets in, when it is given)."""
    metrics_app = exposition.make_wsgi_app(reg)
    probes = {"/livez": live, "/healthz": live, "/readyz": ready or live}

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        check = probes.get(environ.get("PATH_INFO", ""))
        if check is not None:
            return _probe(check, start_response)
        if authorize is not None:
            verdict = authorize(environ.get("HTTP_AUTHORIZATION"))
            if not verdict.allowed:
                return _refuse(verdict, start_response)
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return handle


def serve(
    reg: registry.CollectorRegistry,
    port: int,
    live: Check,
    *,
    host: str = "0.0.0.0",
    ready: Check | None = None,
    authorize: Authorize | None = None,
    tls: Tls | None = None,
) -> Server:
    """Start serving in daemon threads (``ready`` defaults to ``live``; ``authorize`` guards
    ``/metrics``; ``tls`` makes it HTTPS)."""
    httpd = simple_server.make_server(
        host,
        port,
        app(reg, live, ready, authorize),
        _ThreadingServer,
        handler_class=_QuietHandler,
    )
    assert isinstance(httpd, _ThreadingServer)
    httpd.tls = tls
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    return Server(httpd, thread)
