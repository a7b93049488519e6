"""The operator's connection to the API server: raw JSON over ``kubernetes.aio``.

``kubernetes`` 37 ships an asyncio flavour as ``kubernetes.aio`` (the separate
``kubernetes_asyncio`` package is not installed and not needed). Its generated API classes
turn every object into pydantic models, which costs CPU and memory that 10k watched pods
cannot afford, so this module uses only its configuration loading (kubeconfig or in-cluster
service account), authentication and aiohttp connection pool, and speaks plain JSON: requests
return dicts, watches yield one dict per event line, decoded by orjson (watch decoding was
the operator's largest CPU item in a profiled release burst: 1.6 s of 19 s with the stdlib
``json``; orjson decodes a pod several times faster). Every call the operator makes to the API
server goes through :class:`Api`, so there is one place for timeouts and error mapping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import orjson
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config

JSON: Final = "application/json"
JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"

DEFAULT_TIMEOUT_S: Final = 30.0
"""Timeout of one ordinary request, seconds."""
POOL_SIZE: Final = 64
"""Most requests in flight at once (releases are patched concurrently)."""


class ApiError(RuntimeError):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {body[:300]}")
        self.status = status
        self.reason = reason
        self.body = body


class Api:
    """A small JSON client; create with :func:`connect`, close with :meth:`close`."""

    def __init__(self, api_client: Any) -> None:
        self._client = api_client

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: float,
    ) -> Any:
        params = await self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params={"Content-Type": content_type, "Accept": JSON},
            body=body,
            auth_settings=["BearerToken"],
        )
        return await self._client.call_api(*params, _request_timeout=timeout)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Any:
        """One request; returns the decoded JSON body, raises :class:`ApiError` on non-2xx."""
        response = await self._call(
            method, path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        data: bytes = await response.read()
        if not 200 <= response.status < 300:
            raise ApiError(response.status, str(response.reason), data.decode(errors="replace"))
        return orjson.loads(data) if data else None

    async def get_or_none(self, path: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
        """GET ``path``; None when it does not exist (404), :class:`ApiError` otherwise."""
        try:
            return await self.request("GET", path, timeout=timeout)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def lines(
        self, path: str, *, query: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """A watch: yields one decoded JSON object per line until the server ends it."""
        response = await self._call(
            "GET", path, query=query, body=None, content_type=JSON, timeout=timeout
        )
        raw = response.response
        try:
            if not 200 <= response.status < 300:
                data = await response.read()
                raise ApiError(response.status, str(response.reason), data.decode(errors="replace"))
            while True:
                line = await raw.content.readline()
                if not line:
                    return
                if line.strip():
                    yield orjson.loads(line)
        finally:
            raw.release()


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """The apiserver URL a pod is told to use (``KUBERNETES_SERVICE_HOST``/``_PORT``), or None.

    The kubelet sets both to the ``kubernetes`` Service; the chart's ``hostNetwork`` option
    overrides them with an address the node reaches without kube-proxy or cluster DNS. kopf's
    own service-account login ignores them and dials ``kubernetes.default.svc``, which needs
    DNS, so the operator's kopf login uses this URL instead (``operator.handlers.login``).
    """
    host = environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    if not host:
        return None
    port = environ.get("KUBERNETES_SERVICE_PORT", "").strip() or "443"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"https://{host}:{port}"


async def connect(kubeconfig: str | None = None) -> Api:
    """Connect with ``kubeconfig``, else ``$KUBECONFIG``, else the in-cluster service account."""
    configuration = aio_client.Configuration()
    loader: Any = aio_config  # the loaders are untyped
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        await loader.load_kube_config(config_file=path, client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        loader.load_incluster_config(client_configuration=configuration)
    else:
        await loader.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = POOL_SIZE
    return Api(aio_client.ApiClient(configuration))
