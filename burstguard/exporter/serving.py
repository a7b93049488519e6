"""HTTP server for ``/metrics`` (Prometheus text) and ``/healthz`` (liveness).

prometheus_client's WSGI app renders the registry; a small WSGI wrapper answers
``/healthz`` from a callback so the kubelet's liveness probe fails when the sampling loop is
stuck (no sample for a while) rather than when a signal source is merely degraded. The
server runs in a daemon thread; :func:`serve` returns it so the agent can shut it down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref import simple_server

from prometheus_client import exposition, registry


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Do not log every scrape."""


@dataclass
class Server:
    """A running metrics server."""

    httpd: simple_server.WSGIServer
    """The server."""
    thread: threading.Thread
    """Its serving thread."""

    @property
    def port(self) -> int:
        """Bound port (useful with port 0)."""
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def app(
    reg: registry.CollectorRegistry, health: Callable[[], tuple[bool, str]]
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """WSGI app: ``/healthz`` from ``health()``, everything else from the registry."""
    metrics_app = exposition.make_wsgi_app(reg)

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, message = health()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
            return [(message + "\n").encode()]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return handle


def serve(
    reg: registry.CollectorRegistry,
    port: int,
    health: Callable[[], tuple[bool, str]],
    host: str = "0.0.0.0",
) -> Server:
    """Start serving in a daemon thread."""
    httpd = simple_server.make_server(
        host, port, app(reg, health), simple_server.WSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    return Server(httpd, thread)
