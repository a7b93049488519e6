"""A real local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok.

``Cluster.start(directory)`` makes the PKI, writes a kubeconfig, starts the five processes on
free loopback ports, waits until each answers its health endpoint (and the ``default``
ServiceAccount exists, so pods can be created at once), and records everything in
``<directory>/cluster.json``, the pidfile that lets another process (``burstguard dev-cluster
status|down``) find and stop it. Logs go to ``<directory>/logs/<component>.log``.

Choices, and why:

- **The apiserver is configured like a real cluster**, because burstguard's webhook, gates,
  RBAC and CRD validation are what the tests check: ``Node,RBAC`` authorization; the default
  admission plugins (MutatingAdmissionWebhook, ValidatingAdmissionWebhook,
  ValidatingAdmissionPolicy, ServiceAccount, ...) plus NodeRestriction, as kubeadm enables.
  ServiceAccount admission stays on: kube-controller-manager creates every namespace's
  ``default`` ServiceAccount within milliseconds (the plugin also retries briefly), and the
  plugin is what mounts projected service-account tokens into pods, which agent-identity
  tests need. Service-account signing key and issuer are set, so TokenRequest works; tokens
  bound to a pod carry the pod's node (``kubernetes.io.node`` claim, surfaced to admission
  as the user extra ``authentication.kubernetes.io/node-name``), and so do tokens bound
  directly to a Node (ServiceAccountTokenNodeBinding, GA since 1.33).
- **Authentication by client certificate**: the kubeconfig embeds an admin certificate
  (``O=system:masters``); ``write_user_kubeconfig`` issues one for any user and groups, for
  RBAC tests. Controllers use the admin identity (a dev cluster does not test their RBAC).
- **kwok manages only nodes annotated** ``kwok.x-k8s.io/node=fake`` and runs its default
  stages (node initialize + lease heartbeat; pod ready, Job pods complete, deleted pods go);
  ``create_nodes`` makes such nodes *without* the usual kwok taint by default, since no real
  kubelet exists here and tests then need no toleration.
- **etcd runs with** ``--unsafe-no-fsync``: data is thrown away with the cluster and fsync on
  a shared disk is the slowest part of every write.
- **No orphans**: see ``supervising``; an attached cluster (the default) is also stopped at
  interpreter exit and on SIGTERM/SIGHUP. ``detach=True`` (``dev-cluster up``) leaves the
  processes running after this process exits; stop them with ``Cluster.attach(dir).stop()``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import datetime
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final

import yaml

from burstguard.devcluster import binaries as binaries_
from burstguard.devcluster import pki, rest, supervising

STATE_FILE: Final = "cluster.json"
"""Pidfile and connection facts of a running cluster, inside its directory."""

KUBECONFIG_FILE: Final = "kubeconfig"
"""Admin kubeconfig (credentials embedded), inside the cluster directory."""

PORT_ATTEMPTS: Final = 3
"""Starts with freshly picked ports when one was taken between picking and binding."""

START_TIMEOUT_S: Final = 120.0
"""Longest wait for the whole control plane to become ready, seconds."""

SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
"""``iss`` of service-account tokens and their default audience."""

SERVICE_CIDR: Final = "10.96.0.0/16"
"""ClusterIP range."""

POD_CIDR: Final = "10.244.0.0/16"
"""Pod IPs kwok hands out."""

KWOK_ANNOTATION: Final = "kwok.x-k8s.io/node"
"""Node annotation (value ``fake``) selecting the nodes kwok manages."""

KWOK_TAINT: Final = {"key": KWOK_ANNOTATION, "value": "fake", "effect": "NoSchedule"}
"""Taint ``create_nodes(taint=True)`` adds; pods then need a matching toleration."""

NODE_CREATE_WORKERS: Final = 8
"""Concurrent node creations in ``create_nodes``."""

NODE_LABEL: Final = "type"
"""Label ``type=kwok`` on every node ``create_nodes`` makes."""

ETCD: Final = binaries_.ETCD
APISERVER: Final = binaries_.APISERVER
CONTROLLER_MANAGER: Final = binaries_.CONTROLLER_MANAGER
SCHEDULER: Final = binaries_.SCHEDULER
KWOK: Final = binaries_.KWOK
COMPONENTS: Final = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK)
"""Components in start order (the last three start together)."""

Progress = Callable[[str], None]


class StartError(RuntimeError):
    """A component failed to start or to become healthy; the message holds its log tail."""


class NotRunningError(RuntimeError):
    """No running cluster is recorded in the directory."""


@dataclass(frozen=True)
class Ports:
    """Loopback TCP ports of one cluster."""

    etcd_client: int
    """etcd client URL port (plain HTTP)."""
    etcd_peer: int
    """etcd peer URL port."""
    apiserver: int
    """kube-apiserver secure port."""
    controller_manager: int
    """kube-controller-manager secure port (health, metrics)."""
    scheduler: int
    """kube-scheduler secure port (health, metrics)."""
    kwok: int
    """kwok HTTP server port (health, metrics)."""

    @staticmethod
    def pick() -> Ports:
        """Six distinct free ports (all held open at once while picking)."""
        socks = []
        try:
            for _ in range(6):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return Ports(*(s.getsockname()[1] for s in socks))
        finally:
            for s in socks:
                s.close()


@dataclass(frozen=True)
class Health:
    """One component as seen by ``Cluster.health``."""

    name: str
    """Component name."""
    pid: int
    """Process id (0 if never started)."""
    running: bool
    """The recorded process is alive."""
    healthy: bool
    """Its health endpoint answered OK."""
    detail: str
    """Endpoint and answer, or why not."""


@dataclass(frozen=True)
class ServingCert:
    """A serving certificate signed by the cluster CA, e.g. for a webhook on 127.0.0.1."""

    cert: Path
    """Certificate file, PEM."""
    key: Path
    """Private key file, PEM."""
    ca: Path
    """The cluster CA certificate file, PEM."""
    ca_bundle: str
    """The CA as a ``clientConfig.caBundle`` value (base64 PEM)."""


@dataclass(frozen=True)
class Layout:
    """Where a cluster keeps its files."""

    root: Path
    """The cluster directory."""

    @property
    def pki_dir(self) -> Path:
        """Certificates and keys."""
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        """One log file per component."""
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        """etcd data directory."""
        return self.root / "etcd"

    @property
    def kwok_workdir(self) -> Path:
        """``KWOK_WORKDIR``: keeps kwok away from ``~/.kwok``."""
        return self.root / "kwok"

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig."""
        return self.root / KUBECONFIG_FILE

    @property
    def state(self) -> Path:
        """Pidfile (JSON)."""
        return self.root / STATE_FILE

    def files(self, stem: str) -> pki.Files:
        """``pki/<stem>.crt`` and ``pki/<stem>.key``."""
        return pki.Files(cert=self.pki_dir / f"{stem}.crt", key=self.pki_dir / f"{stem}.key")

    @property
    def ca(self) -> pki.Files:
        """Cluster CA."""
        return self.files("ca")

    @property
    def admin(self) -> pki.Files:
        """Admin client certificate (system:masters)."""
        return self.files("admin")

    @property
    def service_account(self) -> pki.Files:
        """Service-account signing key (``sa.key``) and public key (``sa.pub``)."""
        return pki.Files(cert=self.pki_dir / "sa.pub", key=self.pki_dir / "sa.key")


# ---------------------------------------------------------------------------------------------
# Files: PKI, kubeconfig, command lines


def write_pki(layout: Layout) -> None:
    """CA, serving certificates, admin client certificate, service-account key pair."""
    ca = pki.new_ca()
    pki.write(ca, layout.pki_dir, "ca")
    loopback = list(pki.LOOPBACK_HOSTS)
    apiserver_hosts = [
        *loopback,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    pki.write(
        pki.issue(ca, APISERVER, hosts=apiserver_hosts, server=True), layout.pki_dir, "apiserver"
    )
    pki.write(
        pki.issue(ca, "devcluster-components", hosts=loopback, server=True),
        layout.pki_dir,
        "components",
    )
    admin = pki.issue(ca, "devcluster-admin", organizations=["system:masters"], client=True)
    pki.write(admin, layout.pki_dir, "admin")
    pki.write(pki.new_signing_key(), layout.pki_dir, "sa", cert_suffix=".pub")


def kubeconfig(server: str, ca_pem: bytes, client: pki.KeyPair, user: str) -> dict[str, Any]:
    """A kubeconfig with everything embedded (it keeps working if the directory moves)."""
    b64 = pki.ca_bundle
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert_pem),
                    "client-key-data": b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": user}}],
        "current-context": "devcluster",
        "preferences": {},
    }


def _write_kubeconfig(path: Path, config: Mapping[str, Any]) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))


def command_lines(bins: binaries_.Binaries, layout: Layout, ports: Ports) -> dict[str, list[str]]:
    """The argv of every component (without extra arguments)."""
    loop = "127.0.0.1"
    peer = f"http://{loop}:{ports.etcd_peer}"
    components = layout.files("components")
    health_paths = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
    return {
        ETCD: [
            str(bins.path(ETCD)),
            "--name=devcluster",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls=http://{loop}:{ports.etcd_client}",
            f"--advertise-client-urls=http://{loop}:{ports.etcd_client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devcluster={peer}",
            "--unsafe-no-fsync",
            "--auto-compaction-retention=1",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ],
        APISERVER: [
            str(bins.path(APISERVER)),
            f"--etcd-servers=http://{loop}:{ports.etcd_client}",
            f"--bind-address={loop}",
            f"--advertise-address={loop}",
            f"--secure-port={ports.apiserver}",
            f"--tls-cert-file={layout.files('apiserver').cert}",
            f"--tls-private-key-file={layout.files('apiserver').key}",
            f"--client-ca-file={layout.ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={layout.service_account.cert}",
            f"--service-account-signing-key-file={layout.service_account.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # A loopback address cannot be an Endpoints IP; nothing here needs the
            # `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type=none",
            # Webhooks and aggregated APIs behind a Service are called at one of its endpoints
            # (a pod IP), not at its ClusterIP: there is no kube-proxy to route a ClusterIP.
            "--enable-aggregator-routing=true",
            "--profiling=false",
        ],
        CONTROLLER_MANAGER: [
            str(bins.path(CONTROLLER_MANAGER)),
            f"--kubeconfig={layout.kubeconfig}",
            f"--bind-address={loop}",
            f"--secure-port={ports.controller_manager}",
            f"--tls-cert-file={components.cert}",
            f"--tls-private-key-file={components.key}",
            health_paths,
            "--leader-elect=false",
            f"--root-ca-file={layout.ca.cert}",
            f"--service-account-private-key-file={layout.service_account.key}",
            f"--cluster-signing-cert-file={layout.ca.cert}",
            f"--cluster-signing-key-file={layout.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--profiling=false",
        ],
        SCHEDULER: [
            str(bins.path(SCHEDULER)),
            f"--kubeconfig={layout.kubeconfig}",
            f"--bind-address={loop}",
            f"--secure-port={ports.scheduler}",
            f"--tls-cert-file={components.cert}",
            f"--tls-private-key-file={components.key}",
            health_paths,
            "--leader-elect=false",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--profiling=false",
        ],
        KWOK: [
            str(bins.path(KWOK)),
            f"--kubeconfig={layout.kubeconfig}",
            f"--config={bins.kwok_stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--manage-nodes-with-label-selector=",
            "--manage-single-node=",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address={loop}:{ports.kwok}",
        ],
    }


def node_manifest(
    name: str,
    *,
    cpu: str = "32",
    memory: str = "256Gi",
    pods: int = 110,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taint: bool = False,
) -> dict[str, Any]:
    """A Node kwok will manage, with capacity set (the apiserver keeps status on create)."""
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                KWOK_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                **(annotations or {}),
            },
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/agent": "",
                NODE_LABEL: "kwok",
                **(labels or {}),
            },
        },
        "spec": {"taints": [dict(KWOK_TAINT)] if taint else []},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
            "phase": "Running",
        },
    }


def _node_schedulable(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = node.get("spec", {}).get("taints") or []
    not_ready = any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)
    return ready and not not_ready


# ---------------------------------------------------------------------------------------------
# Teardown at exit and on signals, for every cluster started attached by this process

_live: set[Cluster] = set()
_hooks: dict[str, bool] = {"installed": False}
_hooks_lock = threading.Lock()


def _stop_all() -> None:
    # Without the directory lock: this may run from a signal handler that interrupted a
    # start holding it, and a second flock in the same process would wait forever.
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster._stop_unlocked()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    with _hooks_lock:
        if _hooks["installed"]:
            return
        _hooks["installed"] = True
        atexit.register(_stop_all)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) in (signal.SIG_DFL, None):
                    signal.signal(sig, _on_signal)


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with (layout.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------------------------------------
# The cluster


@dataclass(eq=False)
class Cluster:
    """A running (or stopped) local control plane; use ``start`` or ``attach`` to get one."""

    directory: Path
    """The cluster directory (state, PKI, kubeconfig, logs, etcd data)."""
    binaries: binaries_.Binaries
    """The executables it runs."""
    ports: Ports
    """Its loopback ports."""
    records: list[supervising.Record]
    """Started processes, in start order."""
    detached: bool
    """True when the processes outlive the Python process that started them."""
    ready_seconds: float = 0.0
    """Time from start to ready, seconds."""
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    # -- facts ---------------------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        """Where its files are."""
        return Layout(self.directory)

    @property
    def kubeconfig_path(self) -> Path:
        """Admin kubeconfig (``KUBECONFIG=...`` for kubectl, kopf or the kubernetes client)."""
        return self.layout.kubeconfig

    @property
    def server(self) -> str:
        """The apiserver URL."""
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def ca_path(self) -> Path:
        """The cluster CA certificate (PEM): it signed the apiserver's serving certificate."""
        return self.layout.ca.cert

    @property
    def kubectl(self) -> Path:
        """A kubectl of the same version."""
        return self.binaries.kubectl

    def client(self) -> rest.Client:
        """A minimal admin HTTPS client (``burstguard.k8s`` is the real one)."""
        admin = self.layout.admin
        return rest.Client(self.server, rest.tls_context(self.ca_path, admin.cert, admin.key))

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        directory: Path | str,
        *,
        bins: binaries_.Binaries | None = None,
        detach: bool = False,
        extra_args: Mapping[str, Sequence[str]] | None = None,
        timeout_s: float = START_TIMEOUT_S,
        progress: Progress | None = None,
    ) -> Cluster:
        """Start a fresh cluster in ``directory`` and wait until it is ready.

        A cluster still recorded there is stopped first, and etcd data is wiped. ``extra_args``
        maps a component name to flags appended to its command line (later flags win).
        Raises ``MissingBinariesError`` or ``StartError`` (nothing is left running).
        """
        say = progress or (lambda _msg: None)
        bins = bins or binaries_.locate()
        layout = Layout(Path(directory).resolve())
        began = time.monotonic()
        deadline = began + timeout_s
        with _locked(layout):
            with contextlib.suppress(NotRunningError):
                stale = cls._load(layout)
                if any(supervising.alive(r) for r in stale.records):
                    say(f"stopping the cluster left running in {layout.root}")
                    stale._stop_unlocked()
            layout.kwok_workdir.mkdir(parents=True, exist_ok=True)
            write_pki(layout)
            for attempt in range(1, PORT_ATTEMPTS + 1):
                cluster = cls(layout.root, bins, Ports.pick(), [], detach)
                try:
                    cluster._boot(extra_args, deadline, say, began)
                    break
                except StartError as exc:
                    # Ports are picked free, then released for the component to bind: another
                    # process may take one in between. Pick again rather than fail a test run.
                    if "address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                        raise
                    say(f"a port was taken meanwhile ({exc.args[0].splitlines()[0]}); new ports")
            cluster.ready_seconds = time.monotonic() - began
            cluster._save()
            say(f"control plane ready in {cluster.ready_seconds:.1f} s at {cluster.server}")
            return cluster

    def _boot(
        self,
        extra_args: Mapping[str, Sequence[str]] | None,
        deadline: float,
        say: Progress,
        began: float,
    ) -> None:
        """Write the kubeconfig, start every component in order and wait for readiness."""
        layout = self.layout
        shutil.rmtree(layout.etcd_data, ignore_errors=True)
        ca = pki.read(layout.ca)
        _write_kubeconfig(
            layout.kubeconfig,
            kubeconfig(self.server, ca.cert_pem, pki.read(layout.admin), "devcluster-admin"),
        )
        argv = command_lines(self.binaries, layout, self.ports)
        for name, extra in (extra_args or {}).items():
            argv[name] = [*argv[name], *extra]
        if not self.detached:
            _install_hooks()
            _live.add(self)
        try:
            self._launch(ETCD, argv, say)
            self._wait([ETCD], deadline, say, began)
            self._launch(APISERVER, argv, say)
            self._wait([APISERVER], deadline, say, began)
            for name in (CONTROLLER_MANAGER, SCHEDULER, KWOK):
                self._launch(name, argv, say)
            self._wait([CONTROLLER_MANAGER, SCHEDULER, KWOK], deadline, say, began)
            self._wait_default_service_account(deadline)
        except BaseException:
            self._stop_unlocked()
            raise

    @classmethod
    def attach(cls, directory: Path | str) -> Cluster:
        """The cluster recorded in ``directory`` (running or not); raises ``NotRunningError``."""
        return cls._load(Layout(Path(directory).resolve()))

    @classmethod
    def _load(cls, layout: Layout) -> Cluster:
        try:
            state = json.loads(layout.state.read_text())
        except (OSError, ValueError) as exc:
            raise NotRunningError(f"no cluster recorded in {layout.root} ({exc})") from exc
        return cls(
            directory=layout.root,
            binaries=binaries_.Binaries(Path(state["binaries"])),
            ports=Ports(**state["ports"]),
            records=[supervising.Record.from_json(r) for r in state["processes"]],
            detached=True,  # processes of another Python process: never tied to this one
            ready_seconds=float(state.get("ready_seconds", 0.0)),
        )

    def _save(self) -> None:
        state = {
            "version": binaries_.KUBE_VERSION,
            "binaries": str(self.binaries.directory),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig_path),
            "ports": self.ports.__dict__,
            "owner_pid": os.getpid(),
            "detached": self.detached,
            "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "ready_seconds": round(self.ready_seconds, 2),
            "processes": [r.to_json() for r in self.records],
        }
        tmp = self.layout.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.layout.state)

    def _launch(self, name: str, argv: Mapping[str, Sequence[str]], say: Progress) -> None:
        env = dict(os.environ)
        env["NO_PROXY"] = env["no_proxy"] = ",".join(
            filter(None, [env.get("NO_PROXY", ""), "127.0.0.1,localhost"])
        )
        if name == KWOK:
            env["KWOK_WORKDIR"] = str(self.layout.kwok_workdir)
        record, proc = supervising.spawn(
            name,
            argv[name],
            log=self.layout.logs / f"{name}.log",
            env=env,
            cwd=self.directory,
            die_with_parent=not self.detached,
        )
        self.records.append(record)
        self._children[record.pid] = proc
        self._save()  # the pidfile lists every process as soon as it exists
        say(f"started {name} (pid {record.pid})")

    def _wait(self, names: Sequence[str], deadline: float, say: Progress, began: float) -> None:
        pending = list(names)
        while pending:
            for name in list(pending):
                record = self._record(name)
                if record is None or not supervising.alive(record):
                    log = record.log if record else ""
                    raise StartError(
                        f"{name} exited during start; last lines of {log}:\n{supervising.tail(log)}"
                    )
                ok, _ = self._probe(name)
                if ok:
                    pending.remove(name)
                    say(f"{name} healthy after {time.monotonic() - began:.1f} s")
            if pending and time.monotonic() > deadline:
                name = pending[0]
                record = self._record(name)
                log = record.log if record else ""
                raise StartError(
                    f"{name} not healthy in time ({self._probe(name)[1]}); "
                    f"last lines of {log}:\n{supervising.tail(log)}"
                )
            if pending:
                time.sleep(0.1)

    def _wait_default_service_account(self, deadline: float) -> None:
        client = self.client()
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        while client.call("GET", path).status != 200:
            if time.monotonic() > deadline:
                raise StartError(
                    "the default ServiceAccount did not appear (kube-controller-manager)"
                )
            time.sleep(0.1)

    def _record(self, name: str) -> supervising.Record | None:
        found = [r for r in self.records if r.name == name]
        return found[-1] if found else None

    def _probe(self, name: str) -> tuple[bool, str]:
        loop = "http://127.0.0.1"
        admin = self.layout.admin
        checks: dict[str, tuple[str, ssl.SSLContext | None]] = {
            ETCD: (f"{loop}:{self.ports.etcd_client}/health", None),
            APISERVER: (
                f"{self.server}/readyz",
                rest.tls_context(self.ca_path, admin.cert, admin.key),
            ),
            CONTROLLER_MANAGER: (
                f"https://127.0.0.1:{self.ports.controller_manager}/healthz",
                rest.tls_context(self.ca_path),
            ),
            SCHEDULER: (
                f"https://127.0.0.1:{self.ports.scheduler}/healthz",
                rest.tls_context(self.ca_path),
            ),
            KWOK: (f"{loop}:{self.ports.kwok}/healthz", None),
        }
        url, ctx = checks[name]
        try:
            answer = rest.fetch(url, context=ctx, timeout=2.0)
        except rest.ApiError as exc:
            return False, str(exc)
        body = answer.body.decode(errors="replace").strip()
        ok = answer.status == 200 and (name != ETCD or '"health":"true"' in body)
        return ok, f"{url} -> {answer.status} {body[:80]}"

    def health(self) -> list[Health]:
        """Every component: process alive, health endpoint answer."""
        out = []
        for name in COMPONENTS:
            record = self._record(name)
            running = record is not None and supervising.alive(record)
            ok, detail = self._probe(name) if running else (False, "not running")
            out.append(Health(name, record.pid if record else 0, running, ok, detail))
        return out

    def is_running(self) -> bool:
        """True if any recorded process is alive."""
        return any(supervising.alive(r) for r in self.records)

    def stop(self, grace_s: float = supervising.STOP_GRACE_S) -> list[str]:
        """Stop every process: SIGTERM, SIGKILL after ``grace_s``; returns the names killed hard."""
        with _locked(self.layout):
            return self._stop_unlocked(grace_s)

    def _stop_unlocked(self, grace_s: float = supervising.STOP_GRACE_S) -> list[str]:
        # etcd last: an apiserver whose etcd is gone spends its whole grace period retrying.
        upper = [r for r in self.records if r.name != ETCD]
        killed = supervising.stop(upper, children=self._children, grace_s=grace_s)
        etcd = [r for r in self.records if r.name == ETCD]
        killed += supervising.stop(etcd, children=self._children, grace_s=grace_s)
        self._children.clear()
        _live.discard(self)
        with contextlib.suppress(FileNotFoundError):
            self.layout.state.unlink()
        return killed

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers for tests and demos -------------------------------------------------------------

    def create_nodes(
        self,
        count: int,
        *,
        prefix: str = "kwok-node-",
        start_index: int = 0,
        cpu: str = "32",
        memory: str = "256Gi",
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        taint: bool = False,
        wait_s: float | None = 60.0,
    ) -> list[str]:
        """Create ``count`` kwok nodes ``<prefix><i>`` and wait until they are schedulable.

        Schedulable means Ready (kwok's node-initialize stage) with no
        ``node.kubernetes.io/*`` condition taint left. ``taint=True`` adds
        ``kwok.x-k8s.io/node=fake:NoSchedule``: pods then need a toleration for it.
        ``wait_s=None`` returns without waiting.
        """
        client = self.client()
        names = [f"{prefix}{i}" for i in range(start_index, start_index + count)]
        manifests = [
            node_manifest(
                name,
                cpu=cpu,
                memory=memory,
                pods=pods,
                labels=labels,
                annotations=annotations,
                taint=taint,
            )
            for name in names
        ]
        # Concurrent POSTs: one at a time, a round trip each, hundreds of nodes take seconds.
        with concurrent.futures.ThreadPoolExecutor(max_workers=NODE_CREATE_WORKERS) as pool:
            for _ in pool.map(lambda m: client.json("POST", "/api/v1/nodes", m), manifests):
                pass
        if wait_s is None:
            return names
        deadline = time.monotonic() + wait_s
        waiting = set(names)
        while waiting:
            # One LIST per round rather than a GET per node: scale runs create hundreds.
            listed = client.json("GET", "/api/v1/nodes")["items"]
            waiting -= {n["metadata"]["name"] for n in listed if _node_schedulable(n)}
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"kwok nodes not ready after {wait_s} s: {sorted(waiting)}")
            if waiting:
                time.sleep(0.1)
        return names

    def issue_serving_cert(
        self, name: str, hosts: Sequence[str] = pki.LOOPBACK_HOSTS
    ) -> ServingCert:
        """A serving certificate for ``hosts`` signed by the cluster CA, under ``pki/<name>``.

        For a webhook server on 127.0.0.1: register it with ``url: https://127.0.0.1:<port>/...``
        and ``caBundle: <ServingCert.ca_bundle>``; the apiserver then verifies it.
        """
        ca = pki.read(self.layout.ca)
        files = pki.write(pki.issue(ca, name, hosts=hosts, server=True), self.layout.pki_dir, name)
        return ServingCert(files.cert, files.key, self.ca_path, pki.ca_bundle(ca.cert_pem))

    def write_user_kubeconfig(
        self, user: str, groups: Sequence[str] = (), *, path: Path | None = None
    ) -> Path:
        """A kubeconfig authenticating as ``user`` in ``groups`` (client cert), for RBAC tests."""
        ca = pki.read(self.layout.ca)
        client = pki.issue(ca, user, organizations=groups, client=True)
        target = path or self.directory / f"kubeconfig-{user.replace(':', '_')}"
        _write_kubeconfig(target, kubeconfig(self.server, ca.cert_pem, client, user))
        return target
