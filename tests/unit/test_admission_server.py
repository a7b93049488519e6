"""The webhook server answers AdmissionReviews over TLS with a certificate it made itself.

Runs a real aiohttp TLS server on 127.0.0.1 (no cluster needed); the cluster tests check
the real apiserver calling it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from burstguard.api import names, policy
from burstguard.operator import admission, certificates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def enforce() -> policy.BurstPolicy:
    sel = policy.LabelSelector(match_labels=(("app", "batch"),))
    spec = policy.PolicySpec(mode="Enforce", pods=policy.PodSelection(pod_selector=sel))
    return policy.BurstPolicy(name="batch", created_at=1.0, spec=spec)


def review(obj: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "abc",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "jobs",
            "object": obj,
        },
    }


async def post(port: int, ca: Path, body: Any) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{port}{admission.MUTATE_PATH}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with session.post(url, data=data, ssl=context) as response:
            assert response.status == 200
            answer: dict[str, Any] = await response.json()
            return answer


async def test_a_selected_pod_gets_a_gate_patch_over_verified_tls(tmp_path: Path) -> None:
    files = certificates.ensure(tmp_path, ["127.0.0.1", "localhost"])
    server = admission.AdmissionServer(
        policies=lambda: [enforce()],
        namespace_labels=lambda ns: {},
        excluded_namespaces=frozenset(),
    )
    port = free_port()
    await server.start(
        host="127.0.0.1", port=port, certfile=str(files.cert), keyfile=str(files.key)
    )
    try:
        pod = {"metadata": {"labels": {"app": "batch"}}, "spec": {"containers": [{"name": "c"}]}}
        answer = await post(port, files.ca, review(pod))
        response = answer["response"]
        assert response["uid"] == "abc" and response["allowed"] is True
        ops = json.loads(base64.b64decode(response["patch"]))
        assert {
            "op": "add",
            "path": "/spec/schedulingGates",
            "value": [{"name": names.SCHEDULING_GATE}],
        } in ops
    finally:
        await server.stop()


async def test_a_request_it_cannot_read_is_allowed_unchanged(tmp_path: Path) -> None:
    files = certificates.ensure(tmp_path, ["127.0.0.1"])
    server = admission.AdmissionServer(
        policies=lambda: [enforce()],
        namespace_labels=lambda ns: {},
        excluded_namespaces=frozenset(),
    )
    port = free_port()
    await server.start(
        host="127.0.0.1", port=port, certfile=str(files.cert), keyfile=str(files.key)
    )
    try:
        answer = await post(port, files.ca, b"{not json")
        assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    finally:
        await server.stop()


def test_certificates_are_reused_so_a_restart_keeps_the_trusted_ca(tmp_path: Path) -> None:
    first = certificates.ensure(tmp_path, ["127.0.0.1"]).ca.read_bytes()
    assert certificates.ensure(tmp_path, ["127.0.0.1"]).ca.read_bytes() == first
