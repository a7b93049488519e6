"""The webhook server answers AdmissionReviews over TLS with a certificate it made itself.

Runs a real aiohttp TLS server on 127.0.0.1 (no cluster needed); the cluster tests check
the real apiserver calling it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from burstguard.api import names, policy
from burstguard.devcluster import pki
from burstguard.operator import admission, certificates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def enforce() -> policy.BurstPolicy:
    sel = policy.LabelSelector(match_labels=(("app", "batch"),))
    spec = policy.PolicySpec(mode="Enforce", pods=policy.PodSelection(pod_selector=sel))
    return policy.BurstPolicy(name="batch", created_at=1.0, spec=spec)


def review(obj: Any, uid: str = "abc") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "jobs",
            "object": obj,
        },
    }


BATCH_POD = {"metadata": {"labels": {"app": "batch"}}, "spec": {"containers": [{"name": "c"}]}}


class Webhook:
    """A started server and how to reach it."""

    def __init__(self, server: admission.AdmissionServer, port: int, ca: Path) -> None:
        self.server = server
        self.port = port
        self.ca = ca

    def url(self, path: str = admission.MUTATE_PATH) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    async def call(
        self,
        body: Any,
        *,
        content_type: str = "application/json",
        session: aiohttp.ClientSession | None = None,
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        own = session is None
        session = session or aiohttp.ClientSession()
        try:
            async with session.post(
                self.url(), data=data, ssl=self.context(), headers={"Content-Type": content_type}
            ) as response:
                if response.status == 200:
                    return 200, await response.json()
                return response.status, await response.text()
        finally:
            if own:
                await session.close()

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url(path), ssl=self.context()) as response,
        ):
            return response.status, await response.text()


def make_server(**kwargs: Any) -> admission.AdmissionServer:
    return admission.AdmissionServer(
        policies=lambda: [enforce()],
        namespace_labels=lambda ns: {},
        excluded_namespaces=frozenset(),
        **kwargs,
    )


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    files = certificates.ensure(tmp_path, ["127.0.0.1", "localhost"])
    server = make_server()
    port = free_port()
    await server.start(
        host="127.0.0.1", port=port, certfile=str(files.cert), keyfile=str(files.key)
    )
    try:
        yield Webhook(server, port, files.ca)
    finally:
        await server.stop()


async def test_a_selected_pod_gets_a_gate_patch_over_verified_tls(webhook: Webhook) -> None:
    status, answer = await webhook.call(review(BATCH_POD))
    assert status == 200
    response = answer["response"]
    assert response["uid"] == "abc" and response["allowed"] is True
    ops = json.loads(base64.b64decode(response["patch"]))
    assert {
        "op": "add",
        "path": "/spec/schedulingGates",
        "value": [{"name": names.SCHEDULING_GATE}],
    } in ops


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        pytest.param(b"{not json", "application/json", "not JSON", id="not-json"),
        pytest.param(review(BATCH_POD), "text/plain", "Content-Type", id="wrong-content-type"),
        pytest.param([1, 2], "application/json", "not a JSON object", id="not-an-object"),
        pytest.param(
            {**review(BATCH_POD), "apiVersion": "admission.k8s.io/v1beta1"},
            "application/json",
            "apiVersion",
            id="old-api-version",
        ),
        pytest.param(
            {**review(BATCH_POD), "kind": "TokenReview"}, "application/json", "kind", id="kind"
        ),
        pytest.param(review(BATCH_POD, uid=""), "application/json", "uid", id="no-uid"),
        pytest.param(
            {**review(BATCH_POD), "request": "x"}, "application/json", "request", id="request"
        ),
    ],
)
async def test_a_request_that_is_not_a_v1_admission_review_gets_a_400_saying_why(
    webhook: Webhook, body: Any, content_type: str, reason: str
) -> None:
    status, text = await webhook.call(body, content_type=content_type)
    assert status == 400 and reason in text


async def test_a_body_larger_than_a_mebibyte_is_refused_before_it_is_parsed(
    webhook: Webhook,
) -> None:
    pod = {**BATCH_POD, "metadata": {"labels": {"app": "batch"}, "annotations": {}}}
    pod["metadata"]["annotations"]["big"] = "x" * admission.MAX_BODY_BYTES
    status, text = await webhook.call(review(pod))
    assert status == 400 and "larger than" in text


async def test_a_large_pod_under_the_limit_is_still_gated(webhook: Webhook) -> None:
    pod = {"metadata": {"labels": {"app": "batch"}, "annotations": {"a": "x" * 900_000}}}
    pod["spec"] = {"containers": [{"name": "c"}]}
    status, answer = await webhook.call(review(pod))
    assert status == 200 and "patch" in answer["response"]


async def test_an_error_while_deciding_allows_the_pod_unchanged(tmp_path: Path) -> None:
    files = certificates.ensure(tmp_path, ["127.0.0.1"])

    def broken(body: Mapping[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    server = make_server(decide=broken)
    port = free_port()
    await server.start(
        host="127.0.0.1", port=port, certfile=str(files.cert), keyfile=str(files.key)
    )
    try:
        status, answer = await Webhook(server, port, files.ca).call(review(BATCH_POD))
        assert status == 200
        assert answer["response"] == {"uid": "abc", "allowed": True}
    finally:
        await server.stop()


async def test_livez_and_its_healthz_alias_answer_and_readyz_checks_the_certificate(
    webhook: Webhook, tmp_path: Path
) -> None:
    assert await webhook.get("/livez") == (200, "ok\n")
    assert await webhook.get("/healthz") == (200, "ok\n")
    assert (await webhook.get("/readyz"))[0] == 200
    # A key that does not belong to the certificate: the files change, the reload fails,
    # the old certificate is still served, and readiness says so.
    other = pki.issue(pki.new_ca("other"), "127.0.0.1", hosts=["127.0.0.1"], server=True)
    (tmp_path / "tls.key").write_bytes(other.key_pem)
    await asyncio.sleep(admission.CERT_POLL_S * 2.5)
    status, text = await webhook.get("/readyz")
    assert status == 503 and "cannot load" in text
    assert await webhook.get("/livez") == (200, "ok\n")


def served_serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def write_atomically(directory: Path, pair: pki.KeyPair) -> None:
    """As the kubelet updates a Secret volume: each file replaced by rename, one at a time."""
    for name, data in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem)):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)


async def test_rotating_the_certificate_under_load_fails_no_admission(tmp_path: Path) -> None:
    ca = pki.new_ca("burstguard-webhook-ca")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    write_atomically(tmp_path, pki.issue(ca, "127.0.0.1", hosts=["127.0.0.1"], server=True))
    server = make_server()
    port = free_port()
    await server.start(
        host="127.0.0.1",
        port=port,
        certfile=str(tmp_path / "tls.crt"),
        keyfile=str(tmp_path / "tls.key"),
    )
    hook = Webhook(server, port, tmp_path / "ca.pem")
    results: list[int] = []
    stop = asyncio.Event()

    async def client(n: int) -> None:
        # Half the clients keep a connection alive, half open one per call (a handshake
        # each), so both old and new connections cross every rotation.
        keep = aiohttp.ClientSession() if n % 2 else None
        try:
            i = 0
            while not stop.is_set():
                try:
                    status, answer = await hook.call(
                        review(BATCH_POD, uid=f"{n}-{i}"), session=keep
                    )
                    ok = status == 200 and answer["response"]["uid"] == f"{n}-{i}"
                except (aiohttp.ClientError, ssl.SSLError):
                    ok = False
                results.append(1 if ok else 0)
                i += 1
        finally:
            if keep is not None:
                await keep.close()

    try:
        serials = {await asyncio.to_thread(served_serial, port, hook.ca)}
        clients = [asyncio.create_task(client(n)) for n in range(6)]
        for _ in range(3):
            await asyncio.sleep(0.5)
            write_atomically(tmp_path, pki.issue(ca, "127.0.0.1", hosts=["127.0.0.1"], server=True))
            await asyncio.sleep(admission.CERT_POLL_S * 1.5)
            serials.add(await asyncio.to_thread(served_serial, port, hook.ca))
            assert (await hook.get("/readyz"))[0] == 200
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*clients)
    finally:
        await server.stop()
    failed = results.count(0)
    print(f"admissions during 3 rotations: {len(results)}, failed: {failed}")
    assert len(serials) == 4, "each rotation must be served"
    assert len(results) > 100 and failed == 0


async def test_with_a_client_ca_only_callers_with_its_certificate_are_answered(
    tmp_path: Path,
) -> None:
    files = certificates.ensure(tmp_path, ["127.0.0.1"])
    client_ca = pki.new_ca("apiserver-client-ca")
    (tmp_path / "client-ca.pem").write_bytes(client_ca.cert_pem)
    apiserver = pki.write(
        pki.issue(client_ca, "kube-apiserver", client=True), tmp_path, "apiserver"
    )
    server = make_server()
    port = free_port()
    await server.start(
        host="127.0.0.1",
        port=port,
        certfile=str(files.cert),
        keyfile=str(files.key),
        client_ca=str(tmp_path / "client-ca.pem"),
    )
    hook = Webhook(server, port, files.ca)
    data = json.dumps(review(BATCH_POD)).encode()
    headers = {"Content-Type": "application/json"}
    try:
        with_cert = hook.context()
        with_cert.load_cert_chain(str(apiserver.cert), str(apiserver.key))
        async with (
            aiohttp.ClientSession() as session,
            session.post(hook.url(), data=data, ssl=with_cert, headers=headers) as response,
        ):
            assert response.status == 200
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with (
                aiohttp.ClientSession() as session,
                session.post(hook.url(), data=data, ssl=hook.context(), headers=headers) as r,
            ):
                await r.read()
    finally:
        await server.stop()


def test_certificates_are_reused_so_a_restart_keeps_the_trusted_ca(tmp_path: Path) -> None:
    first = certificates.ensure(tmp_path, ["127.0.0.1"]).ca.read_bytes()
    assert certificates.ensure(tmp_path, ["127.0.0.1"]).ca.read_bytes() == first
