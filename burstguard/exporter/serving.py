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
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from wsgiref import simple_server

from prometheus_client import exposition, registry

CLIENT_TIMEOUT_S: Final = 10.0
"""A connection that sends nothing for this long is closed, seconds."""

Check = Callable[[], tuple[bool, str]]


class _QuietHandler(simple_server.WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Do not log every scrape."""


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    block_on_close = False


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


def app(
    reg: registry.CollectorRegistry, live: Check, ready: Check | None = None
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """WSGI app: the probes from ``live()``/``ready()``, everything else from the registry."""
    metrics_app = exposition.make_wsgi_app(reg)
    probes = {"/livez": live, "/healthz": live, "/readyz": ready or live}

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        check = probes.get(environ.get("PATH_INFO", ""))
        if check is not None:
            return _probe(check, start_response)
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return handle


def serve(
    reg: registry.CollectorRegistry,
    port: int,
    live: Check,
    host: str = "0.0.0.0",
    ready: Check | None = None,
) -> Server:
    """Start serving in daemon threads (``ready`` defaults to ``live``)."""
    httpd = simple_server.make_server(
        host, port, app(reg, live, ready), _ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    return Server(httpd, thread)
