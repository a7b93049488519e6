"""Helpers for the operator's cluster tests: the operator as a subprocess, policies, summaries.

The operator runs exactly as a user runs it (``burstguard operator`` with ``KUBECONFIG``),
registering its webhook by URL on 127.0.0.1, so the real apiserver calls it over TLS.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch

from burstguard.api import names, nodesummary
from tests.cluster.builders import wait_for

GI = 2**30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """``burstguard operator`` in a subprocess; start, stop (gracefully or SIGKILL), restart."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *extra: str,
        register_webhook: bool = True,
        webhook_port: int | None = None,
        cert_dir: Path | None = None,
        standalone: bool = True,
    ) -> None:
        """``register_webhook=False``: the caller creates the webhook configuration (the
        integration tests create the one the Helm chart renders, see ``tests/chart/render``).
        Replicas of one operator share ``webhook_port`` (SO_REUSEPORT) and ``cert_dir``, and
        elect their leader by Lease (``standalone=False``; ``extra`` names the Lease)."""
        self.kubeconfig = kubeconfig
        self.register_webhook = register_webhook
        self.workdir = workdir
        self.cert_dir = cert_dir or workdir / "certs"
        self.standalone = standalone
        self.webhook_port = webhook_port or free_port()
        self.metrics_port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "operator.log"
        self.starts = 0

    def start(self, timeout_s: float = 60.0) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
        # BURSTGUARD_PROFILE_DIR: run the operator under cProfile (main thread: the event loop
        # with the pacer and the watches), one stats file per start, written when it stops.
        profile_dir = os.environ.get("BURSTGUARD_PROFILE_DIR")
        profile = (
            ["-m", "cProfile", "-o", f"{profile_dir}/operator-{os.getpid()}-{self.starts}.prof"]
            if profile_dir
            else []
        )
        argv = [
            sys.executable,
            *profile,
            "-m",
            "burstguard.cli.main",
            "operator",
            "--webhook-host=127.0.0.1",
            f"--webhook-port={self.webhook_port}",
            f"--cert-dir={self.cert_dir}",
            f"--metrics-port={self.metrics_port}",
            *(["--register-webhook"] if self.register_webhook else []),
            "--install-crd",
            *(["--standalone"] if self.standalone else ["--leader-elect", "--webhook-shared-port"]),
            "--status-interval=0.5",
            "--webhook-timeout=10",  # the shared 2-core test machine stalls processes for seconds
            "--log-format=text",
            *self.extra,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1),
            ):
                return
            time.sleep(0.2)
        raise AssertionError(f"operator not ready after {timeout_s}s:\n{self.log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def burst_policy(
    name: str,
    *,
    mode: str = "Enforce",
    pod_labels: Mapping[str, str],
    node_labels: Mapping[str, str],
    pacing: Mapping[str, Any] | None = None,
    headroom: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A BurstPolicy selecting pods and nodes by labels."""
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": names.POLICY_KIND,
        "metadata": {"name": name},
        "spec": {
            "mode": mode,
            "pods": {"podSelector": {"matchLabels": dict(pod_labels)}},
            "nodes": {"nodeSelector": {"matchLabels": dict(node_labels)}},
            "pacing": dict(pacing or {}),
            "headroom": {"staleAfter": "10m", **(headroom or {})},
        },
    }


def summary(headroom_bytes: int, *, at: float | None = None, **kw: Any) -> str:
    """An agent summary annotation value."""
    return nodesummary.encode(
        nodesummary.NodeSummary(
            sampled_at=time.time() if at is None else at,
            state="Open",
            headroom_bytes=headroom_bytes,
            reclaimable_bytes=0,
            **kw,
        )
    )


def publish(core: k8s_client.CoreV1Api, node: str, headroom_bytes: int, **kw: Any) -> None:
    """Write a summary on a node through the real API, as the agent would."""
    core.patch_node(
        node,
        {"metadata": {"annotations": {names.SUMMARY_ANNOTATION: summary(headroom_bytes, **kw)}}},
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Policies:
    """Creates BurstPolicies and deletes them at the end."""

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self.custom = k8s_client.CustomObjectsApi(api)
        self.created: list[str] = []

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.create_cluster_custom_object(
            names.GROUP, names.VERSION, names.POLICY_PLURAL, copy.deepcopy(body)
        )
        self.created.append(body["metadata"]["name"])
        return obj

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_cluster_custom_object(
            names.GROUP, names.VERSION, names.POLICY_PLURAL, name
        )
        return obj

    def ready(self, name: str) -> dict[str, Any] | None:
        for c in (self.get(name).get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return dict(c)
        return None

    def delete_all(self) -> None:
        for name in self.created:
            with contextlib.suppress(k8s_client.ApiException):
                self.custom.delete_cluster_custom_object(
                    names.GROUP, names.VERSION, names.POLICY_PLURAL, name
                )


@dataclass
class PodTimeline:
    """Pod events in one namespace, recorded by a background watch with arrival times."""

    api: k8s_client.ApiClient
    namespace: str
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        core = k8s_client.CoreV1Api(self.api)
        w = k8s_watch.Watch()
        version: str | None = None  # resume without gaps: a gap could hide a pod's gated state
        while not self._stop.is_set():
            kwargs: dict[str, Any] = {"timeout_seconds": 5}
            if version:
                kwargs["resource_version"] = version
            try:
                for ev in w.stream(core.list_namespaced_pod, self.namespace, **kwargs):
                    obj = ev["raw_object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.events.append((time.time(), ev["type"], obj))
                    if self._stop.is_set():
                        break
            except k8s_client.ApiException as exc:
                if exc.status == 410:
                    version = None
                time.sleep(0.2)
            except Exception:
                time.sleep(0.2)

    def __enter__(self) -> PodTimeline:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def first_seen(self) -> dict[str, dict[str, Any]]:
        """Each pod as its first event showed it (i.e. as created, after admission)."""
        out: dict[str, dict[str, Any]] = {}
        for _, _, obj in self.events:
            out.setdefault(obj["metadata"]["name"], obj)
        return out

    def release_times(self) -> dict[str, float]:
        """When each pod was first seen without burstguard's gate (after having had it)."""
        had_gate: set[str] = set()
        out: dict[str, float] = {}
        for t, _, obj in self.events:
            name = obj["metadata"]["name"]
            gates = [g["name"] for g in obj["spec"].get("schedulingGates") or []]
            if names.SCHEDULING_GATE in gates:
                had_gate.add(name)
            elif name in had_gate and name not in out:
                out[name] = t
        return out

    def max_starting_per_node(self) -> int:
        """Most pods bound to one node and not yet running at any event."""
        state: dict[str, tuple[str | None, bool]] = {}
        worst = 0
        for _, kind, obj in self.events:
            name = obj["metadata"]["name"]
            node = obj["spec"].get("nodeName")
            statuses = (obj.get("status") or {}).get("containerStatuses") or []
            phase = (obj.get("status") or {}).get("phase")
            started = phase in ("Succeeded", "Failed") or (
                bool(statuses)
                and all(
                    "running" in s.get("state", {}) or "terminated" in s.get("state", {})
                    for s in statuses
                )
            )
            if kind == "DELETED":
                state.pop(name, None)
            else:
                state[name] = (node, started)
            per_node: dict[str, int] = {}
            for n, s in state.values():
                if n and not s:
                    per_node[n] = per_node.get(n, 0) + 1
            worst = max([worst, *per_node.values()])
        return worst


def pods_in(core: k8s_client.CoreV1Api, namespace: str) -> list[dict[str, Any]]:
    raw = core.api_client.sanitize_for_serialization(core.list_namespaced_pod(namespace).items)
    return list(raw)


def gated(pod: Mapping[str, Any]) -> bool:
    return any(
        g.get("name") == names.SCHEDULING_GATE for g in pod["spec"].get("schedulingGates") or []
    )


@contextlib.contextmanager
def running(op: OperatorProcess) -> Iterator[OperatorProcess]:
    op.start()
    try:
        yield op
    finally:
        op.stop()


__all__ = [
    "GI",
    "OperatorProcess",
    "PodTimeline",
    "Policies",
    "burst_policy",
    "gated",
    "pods_in",
    "publish",
    "unique",
    "wait_for",
]
