"""AdmissionReview bodies, generated, against the real webhook server over TLS on loopback.

Every body gets, within the timeout, either a well-formed AdmissionReview that allows the pod
(fail open: the gate is advisory) or a 4xx for a body the server will not read (400, or 413
beyond its 8 MiB limit); never a 5xx, a hang, a dropped connection or a dead server. Bodies:
arbitrary bytes, invalid UTF-8, arbitrary JSON, reviews with any field replaced by a value
of any type or removed, deep nesting, huge objects and unicode everywhere.

hypothesis and not atheris: atheris needs a libFuzzer-instrumented CPython extension build
and runs one process per target, while hypothesis is already the project's property-test
engine, shrinks to a minimal failing body, and runs a fixed, derandomized example count in
CI like every other test.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from burstguard.api import policy
from burstguard.operator import admission, certificates
from tests.fuzz import counting
from tests.unit.test_admission_server import enforce, free_port, review

EXAMPLES = 400
TIMEOUT_S = 10.0


class Server:
    """The AdmissionServer on its own event loop in a thread (the tests stay synchronous)."""

    def __init__(self, directory: Path) -> None:
        self.files = certificates.ensure(directory, ["127.0.0.1", "localhost"])
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server = admission.AdmissionServer(
            policies=lambda: [enforce()],
            namespace_labels=lambda ns: {"team": "a"},
            excluded_namespaces=frozenset({"kube-system"}),
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.context = ssl.create_default_context(cafile=str(self.files.ca))
        self.conn: http.client.HTTPSConnection | None = None

    def __enter__(self) -> Server:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(
            self.server.start(
                host="127.0.0.1",
                port=self.port,
                certfile=str(self.files.cert),
                keyfile=str(self.files.key),
            ),
            self.loop,
        ).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def post(self, body: bytes) -> tuple[int, bytes]:
        """POST on a kept-alive connection (as the apiserver does); a new one if it closed."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.port, context=self.context, timeout=TIMEOUT_S
                )
            try:
                self.conn.request(
                    "POST",
                    admission.MUTATE_PATH,
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("webhook-fuzz")) as running:
        yield running


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def valid_pod(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "labels": labels, "annotations": {}},
        "spec": {"containers": [{"name": "c", "image": "i"}], "schedulingGates": []},
    }


@st.composite
def mutated_review(draw: st.DrawFn) -> bytes:
    """A review of a pod the policy selects, with some paths replaced, removed or inflated."""
    body = review(valid_pod({"app": "batch"}))
    for _ in range(draw(st.integers(1, 4))):
        node: Any = body
        path = []
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
            path.append(key)
            if not isinstance(node[key], dict | list) or not node[key]:
                break
            node = node[key] if isinstance(node[key], dict) else node[key][0]
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent, dict) else parent[0]
            if isinstance(parent, list):
                parent = parent[0] if parent and isinstance(parent[0], dict) else {}
        if not path or not isinstance(parent, dict):
            continue
        how = draw(st.sampled_from(["replace", "remove", "unicode"]))
        if how == "remove":
            parent.pop(path[-1], None)
        elif how == "unicode":
            parent[path[-1]] = draw(st.text(min_size=1, max_size=64))
        else:
            parent[path[-1]] = draw(JSON)
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"request":{"uid":"u","object":' + inner + b"}}"


BODIES = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256).map(lambda t: t.encode("utf-8", "surrogatepass")),
    JSON.map(lambda v: json.dumps(v).encode()),
    mutated_review(),
    st.builds(nested, st.sampled_from([10, 1000, 100_000]), st.sampled_from(["list", "dict"])),
    st.sampled_from([2**10, 2**20, 9 * 2**20]).map(
        lambda n: json.dumps(review(valid_pod({"app": "batch", "big": "x" * n}))).encode()
    ),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            b'{"request": null}',
            b'{"request": []}',
            b'{"request": {"uid": ["x"]}}',
            b"\xff\xfe",
            b'{"request": {"object": 1}}',
        ]
    ),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=BODIES)
@example(body=nested(100_000, "dict"))
@example(body=nested(100_000, "list"))
@example(body=json.dumps(review(valid_pod({"app": "batch", "big": "x" * 9 * 2**20}))).encode())
@example(body=b'{"request": [1]}')
@example(body=json.dumps(review(valid_pod({"app": "\u00e9\U0001f600\u202e"}))).encode())
def test_every_malformed_review_is_answered_allowed_or_400_never_500_or_a_hang(
    server: Server, body: bytes
) -> None:
    counting.count("webhook AdmissionReview")
    status, data = server.post(body)
    assert status in (200, 400, 413), (status, data[:200])
    if status != 200:
        return
    answer = json.loads(data)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["allowed"] is True
    assert isinstance(response["uid"], str)
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        assert isinstance(json.loads(base64.b64decode(response["patch"])), list)


def test_the_server_still_gates_a_good_pod_after_the_fuzzing(server: Server) -> None:
    status, data = server.post(json.dumps(review(valid_pod({"app": "batch"}))).encode())
    assert status == 200
    assert "patch" in json.loads(data)["response"]
    assert policy  # the policy module the enforce() builder uses
