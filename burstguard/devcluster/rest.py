"""A minimal HTTPS JSON client for the launcher's own calls to the local control plane.

The launcher needs a handful of calls (``/readyz``, creating fake Nodes, reading a
ServiceAccount) before and while other code connects; all real API work of burstguard goes
through ``burstguard.k8s``. Using ``urllib`` and ``ssl`` keeps this adapter free of the
kubernetes client, verifies the server against the cluster CA, authenticates with a client
certificate, and ignores proxy variables: everything here is on 127.0.0.1.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULT_TIMEOUT_S: Final = 5.0
"""Timeout of one request, seconds."""


class ApiError(RuntimeError):
    """A non-2xx answer; ``status`` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


@dataclass(frozen=True)
class Response:
    """Status and body of one answer."""

    status: int
    """HTTP status code."""
    body: bytes
    """Raw body."""

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


def tls_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client context trusting ``ca_file``, presenting the client certificate if given."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file and key_file:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    content_type: str = "application/json",
) -> Response:
    """One request without proxies; returns any status, raises ``ApiError(0)`` if unreachable."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", content_type)
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as answer:
            return Response(answer.status, answer.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(0, f"{url}: {exc}") from exc


@dataclass(frozen=True)
class Client:
    """The apiserver at ``server`` as the identity of ``cert_file``."""

    server: str
    """Base URL, ``https://127.0.0.1:<port>``."""
    context: ssl.SSLContext
    """TLS context verifying the server and presenting the client certificate."""

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Response:
        """Any request; the caller looks at the status."""
        return fetch(self.server + path, method=method, body=body, context=self.context, **kwargs)

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """A request that must succeed; returns the decoded body or raises ``ApiError``."""
        answer = self.call(method, path, body, **kwargs)
        if not 200 <= answer.status < 300:
            raise ApiError(answer.status, f"{method} {path}: {_message(answer.body)}")
        return answer.json()


def _message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500]
    if isinstance(status, dict) and "message" in status:
        return str(status["message"])
    return body.decode(errors="replace")[:500]
