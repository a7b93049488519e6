"""Faults during a paced burst on the real control plane, and the figures each one leaves.

A :class:`Scenario` is: kwok nodes whose summaries a separate agent process publishes every
second (``python -m tests.cluster.chaos publish``: the agent's only effect the operator sees),
operator replicas that elect a leader by Lease and share one webhook port (SO_REUSEPORT: the
kernel spreads the apiserver's connections over them as a Service spreads them over pods),
and a burst of pods created by a few threads. A fault is injected while the burst is being
created and paced; then the scenario waits until every pod is released and reads:

- **escaped**: pods admitted without burstguard's gate. Read from the pods themselves (the
  webhook's policy annotation is written only when it gates), not from a watch, which could
  miss a creation across an apiserver restart;
- **stranded**: pods gated longer than maxGateSeconds + 10 s (or never released);
- **duplicate**: release patches that found the gate already gone, from every replica's log;
- **limit**: nodes that ever had more paced pods starting than ``maxStartingPerNode``;
- **recovery**: from the end of the fault to the first release after it, seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from burstguard.api import names
from tests.cluster import operating
from tests.cluster.builders import PodBuilder, wait_for

RUN_LABEL = "burstguard.test/run"
LEASE_GROUP = "coordination.k8s.io"

ROWS: list[Row] = []
"""Rows recorded in this pytest process; ``tests/conftest.py`` prints them at the end."""


@dataclass(frozen=True)
class Row:
    fault: str
    pods: int
    escaped: int
    stranded: int
    duplicate: int
    limit_violations: int
    recovery_s: float | None
    note: str = ""

    def cells(self) -> list[str]:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return [
            self.fault,
            str(self.pods),
            str(self.escaped),
            str(self.stranded),
            str(self.duplicate),
            str(self.limit_violations),
            recovery,
            self.note,
        ]


HEADER = ["fault", "pods", "escaped", "stranded", "duplicate", "limit", "recovery s", "note"]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (the README keeps a copy)."""
    lines = [HEADER, ["---"] * len(HEADER), *(r.cells() for r in rows)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


# -- the agent: a process that publishes summaries ---------------------------------------------


def publish_forever(kubeconfig: str, nodes: Sequence[str], headroom: int, interval: float) -> None:
    """What ``python -m tests.cluster.chaos publish`` runs: a summary on every node, again and
    again, as the agent would (fresh ``sampledAt`` each time)."""
    api = k8s_config.new_client_from_config(config_file=kubeconfig)
    core = k8s_client.CoreV1Api(api)
    while True:
        for node in nodes:
            with contextlib.suppress(Exception):  # an apiserver restart: try again next round
                operating.publish(core, node, headroom)
        time.sleep(interval)


class Agent:
    """The publisher process: start, SIGKILL, SIGSTOP/SIGCONT (a hung agent)."""

    def __init__(self, kubeconfig: Path, nodes: Sequence[str], headroom: int, log: Path) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "tests.cluster.chaos",
            "publish",
            str(kubeconfig),
            str(headroom),
            ",".join(nodes),
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
            )

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


# -- the operator: replicas electing a leader --------------------------------------------------


class Replicas:
    """Operator replicas of one deployment: one Lease, one webhook port, one cert dir."""

    def __init__(self, kubeconfig: Path, workdir: Path, lease_namespace: str, lease: str) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.port = operating.free_port()
        self.cert_dir = workdir / "certs"
        self.lease_namespace = lease_namespace
        self.lease = lease
        self.all: list[operating.OperatorProcess] = []
        self._next = 0

    def add(self) -> operating.OperatorProcess:
        """Start one more replica and wait until it serves."""
        name = f"replica-{self._next}"
        self._next += 1
        workdir = self.workdir / name
        workdir.mkdir(parents=True)
        op = operating.OperatorProcess(
            self.kubeconfig,
            workdir,
            f"--identity={name}",
            f"--lease-namespace={self.lease_namespace}",
            f"--lease-name={self.lease}",
            register_webhook=False,
            webhook_port=self.port,
            cert_dir=self.cert_dir,
            standalone=False,
        )
        op.start()
        self.all.append(op)
        return op

    def running(self) -> list[operating.OperatorProcess]:
        return [op for op in self.all if op.proc is not None and op.proc.poll() is None]

    def holder(self, api: k8s_client.ApiClient) -> str:
        """The Lease's holder identity ('' when released or absent)."""
        coord = k8s_client.CoordinationV1Api(api)
        try:
            lease = coord.read_namespaced_lease(self.lease, self.lease_namespace)
        except k8s_client.ApiException:
            return ""
        return str(lease.spec.holder_identity or "")

    def leader(self, api: k8s_client.ApiClient) -> operating.OperatorProcess:
        holder = self.holder(api)
        for op in self.running():
            if f"--identity={holder}" in op.extra:
                return op
        raise AssertionError(f"no running replica holds the lease (holder {holder!r})")

    def duplicates(self) -> int:
        return sum(
            op.log_path.read_text(errors="replace").count("duplicate release patch")
            for op in self.all
            if op.log_path.exists()
        )

    def stop_all(self) -> None:
        for op in self.all:
            if op.proc is not None and op.proc.poll() is None:
                op.proc.send_signal(signal.SIGCONT)
            op.stop()


# -- the burst ---------------------------------------------------------------------------------


@dataclass
class Burst:
    """Creates ``count`` pods from ``threads`` threads, retrying through API outages."""

    kubeconfig: Path
    namespace: str
    run: str
    selector: dict[str, str]
    count: int
    threads: int = 4
    created: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _create(self, indexes: range) -> None:
        api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        core = k8s_client.CoreV1Api(api)
        for i in indexes:
            pod = PodBuilder(f"{self.run}-{i}").node_selector(self.selector).build()
            pod["metadata"]["labels"] = {RUN_LABEL: self.run}
            deadline = time.monotonic() + 120
            while True:
                try:
                    core.create_namespaced_pod(self.namespace, pod)
                    break
                except k8s_client.ApiException as exc:
                    if exc.status == 409:  # created by the attempt that seemed to fail
                        break
                    self._failed(deadline)
                except Exception:
                    self._failed(deadline)
            with self._lock:
                self.created += 1

    def _failed(self, deadline: float) -> None:
        with self._lock:
            self.errors += 1
        if time.monotonic() > deadline:
            raise AssertionError("pod creation failed for 120 s")
        time.sleep(0.2)

    def start(self) -> None:
        for t in range(self.threads):
            worker = threading.Thread(
                target=self._create, args=(range(t, self.count, self.threads),), daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def join(self) -> None:
        for worker in self._workers:
            worker.join(timeout=180)


@dataclass
class Outcome:
    row: Row
    release_times: dict[str, float]
    fault_end: float


def released_count(timeline: operating.PodTimeline) -> int:
    return len(timeline.release_times())


def limit_violations(timeline: operating.PodTimeline, per_node: int) -> int:
    """Nodes that at some event had more pods bound and not yet running than ``per_node``."""
    state: dict[str, tuple[str | None, bool]] = {}
    worst: dict[str, int] = {}
    for _, kind, obj in list(timeline.events):
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        started = status.get("phase") in ("Running", "Succeeded", "Failed")
        if kind == "DELETED":
            state.pop(name, None)
        else:
            state[name] = (obj["spec"].get("nodeName"), started)
        per: dict[str, int] = {}
        for node, ok in state.values():
            if node and not ok:
                per[node] = per.get(node, 0) + 1
        for node, n in per.items():
            worst[node] = max(worst.get(node, 0), n)
    return sum(1 for n in worst.values() if n > per_node)


@dataclass
class Scenario:
    """One burst with one fault; see the module docstring."""

    api: k8s_client.ApiClient
    kubeconfig: Path
    namespace: str
    run: str
    nodes: Sequence[str]
    selector: dict[str, str]
    replicas: Replicas
    pods: int = 300
    per_node: int = 4
    max_gate_s: int = 120
    fault_after_released: int = 20

    def play(
        self,
        fault: str,
        inject: Callable[[], float],
        *,
        note: str = "",
        after: Callable[[], None] | None = None,
        fault_after_released: int | None = None,
        settle_s: float = 0.0,
    ) -> Outcome:
        """Create the burst, call ``inject`` once ``fault_after_released`` pods are released
        (it returns when the fault ended, ``time.time()``), wait for every release, measure.

        ``settle_s``: releases seen this soon after the fault ended are not counted as
        recovery (a killed leader's patches already on the wire land just after the kill)."""
        least = self.fault_after_released if fault_after_released is None else fault_after_released
        core = k8s_client.CoreV1Api(self.api)
        started = time.time()
        burst = Burst(self.kubeconfig, self.namespace, self.run, self.selector, self.pods)
        with operating.PodTimeline(self.api, self.namespace) as timeline:
            burst.start()
            wait_for(
                f"{least} pods released before the fault",
                lambda: released_count(timeline) >= least,
                timeout_s=90,
            )
            fault_end = inject()
            if after is not None:
                after()
            burst.join()
            assert burst.created == self.pods, f"created {burst.created} of {self.pods}"
            deadline = time.time() + self.max_gate_s + 30

            def settled() -> bool:
                live = operating.pods_in(core, self.namespace)
                return len(live) >= self.pods and not any(operating.gated(p) for p in live)

            while time.time() < deadline and not settled():
                time.sleep(1.0)
            time.sleep(1.0)  # let the watch deliver the last updates
        final = operating.pods_in(core, self.namespace)
        releases = timeline.release_times()
        created_at = {
            p["metadata"]["name"]: _epoch(p["metadata"]["creationTimestamp"]) for p in final
        }
        escaped = sum(
            1
            for p in final
            if names.POLICY_ANNOTATION not in (p["metadata"].get("annotations") or {})
        )
        limit = self.max_gate_s + 10
        stranded = sum(1 for p in final if operating.gated(p)) + sum(
            1
            for name, at in releases.items()
            if name in created_at and at - created_at[name] > limit
        )
        after_fault = [t for t in releases.values() if t >= fault_end + settle_s]
        recovery = (min(after_fault) - fault_end) if after_fault else None
        row = Row(
            fault=fault,
            pods=len(final),
            escaped=escaped,
            stranded=stranded,
            duplicate=self.replicas.duplicates(),
            limit_violations=limit_violations(timeline, self.per_node),
            recovery_s=recovery,
            note=note or f"burst {time.time() - started:.0f} s",
        )
        ROWS.append(row)
        print(f"\nchaos: {row}", flush=True)
        return Outcome(row=row, release_times=releases, fault_end=fault_end)


def _epoch(stamp: str) -> float:
    import datetime  # noqa: PLC0415

    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def stopped(proc: subprocess.Popen[bytes] | None, seconds: float) -> Iterator[None]:
    """SIGSTOP a process for ``seconds`` (a hang, not a crash), SIGCONT afterwards."""
    if proc is None:
        yield
        return
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["publish"]:
        kubeconfig, headroom, nodes = argv[1], int(argv[2]), argv[3].split(",")
        publish_forever(kubeconfig, nodes, headroom, interval=1.0)
    elif argv[:1] == ["table"]:
        rows = [Row(**r) for r in json.loads(Path(argv[1]).read_text())]
        print(table(rows))
    else:
        raise SystemExit("usage: python -m tests.cluster.chaos publish|table ...")


if __name__ == "__main__":
    main(sys.argv[1:])
