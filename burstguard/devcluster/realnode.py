"""A real node beside the kwok nodes: containerd and a kubelet on this machine, node ``real-0``.

``RealNode.start(cluster)`` makes everything per cluster instance (so two clusters can each have
one): a cgroup root ``/burstguard-<id>`` in every cgroup v1 hierarchy (cpuset with cpus/mems
copied from the root), a Linux bridge ``bgn<id>`` holding the node address ``10.<a>.<b>.1/24``,
a CNI conf dir (bridge + host-local + loopback, no masquerade and no portmap, so CNI adds no
iptables rule), its own containerd (config, root, state, socket under ``<cluster>/real-node``)
and a kubelet on free ports with a ``system:node:real-0`` client certificate. Images are local
(``localimages``) and imported before the kubelet starts.

Why it is shaped so:

- **One mount namespace per node.** containerd starts under ``unshare --mount --propagation
  private``: its overlay, shm and netns mounts (``netns_mounts_under_state_dir``) and a tmpfs on
  ``/run/containerd`` (shim sockets) and ``/var/lib/cni`` (CNI cache) exist only there. When its
  processes are gone, the kernel drops every mount: nothing can be left mounted on the host. The
  real-node directory is bind-mounted on itself and made shared inside that namespace, so the
  kubelet's volume mounts (made in its own namespace, below) reach the containers.
- **The kubelet never changes host sysctls.** It sets vm.overcommit_memory=1, kernel.panic=10
  and kernel.panic_on_oops=1 unless ``protectKernelDefaults`` (then it refuses to start if they
  differ). It runs in a child mount namespace where files holding the values it expects are
  bind-mounted over those ``/proc/sys`` entries, with ``protectKernelDefaults: true``. Other
  processes, pods included, see the real values.
- **It acts only on its pods.** cgroupfs driver, ``failCgroupV1: false``, pods under the cgroup
  root, no system/kube reserved enforcement, eviction thresholds at 0 and image GC off (an image
  deleted here could never be pulled back), no iptables utility chains, no resolv.conf.
- **Capabilities.** Without CAP_SYS_RESOURCE a negative ``oom_score_adj`` is refused and runc
  fails; containerd's ``restrict_oom_score_adj = true`` clamps it. The kubelet's own is 0.
- **Node address.** The kubelet refuses loopback; the address lives on the bridge this module
  creates and deletes, so traffic to it (apiserver -> kubelet logs/exec, webhook endpoints of
  hostNetwork pods) is local delivery on this machine.
- **Runtime: Debian 12's containerd 1.6.20**, not 2.x from the module proxy: a package, no
  build minute in CI, and a 1.36 kubelet runs on it through the RuntimeConfig fallback (it logs
  "RuntimeConfig ... Unimplemented" once).

``stop`` removes everything and ``leftovers`` says what would remain (tests assert it is empty).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from burstguard.devcluster import binaries, localimages, pki, supervising
from burstguard.devcluster import cluster as cluster_

NODE_NAME: Final = "real-0"
"""The real node's name (kwok manages only nodes annotated ``kwok.x-k8s.io/node=fake``)."""
NODE_LABEL_VALUE: Final = "real"
"""Its ``type`` label (kwok nodes carry ``type=kwok``)."""
STATE_FILE: Final = "real-node.json"
"""Pidfile and facts of the real node, inside the cluster directory."""
KUBELET_CACHE_ENV: Final = "BURSTGUARD_KUBELET_CACHE"
"""Environment variable overriding the kubelet cache root (default ~/.cache/burstguard/kubelet)."""
READY_TIMEOUT_S: Final = 120.0
"""Longest wait for the node to be Ready, seconds."""
CGROUP_FS: Final = Path("/sys/fs/cgroup")
"""Where the cgroup v1 hierarchies are mounted."""
SUBNET_BASE: Final = ipaddress.IPv4Network("10.200.0.0/14")
"""Pod /24s are picked from here (away from the service and kwok pod CIDRs)."""
KUBELET_SYSCTLS: Final = {
    "vm.overcommit_memory": 1,
    "vm.panic_on_oom": 0,
    "kernel.panic": 10,
    "kernel.panic_on_oops": 1,
    "kernel.keys.root_maxkeys": 1000000,
    "kernel.keys.root_maxbytes": 25000000,
}
"""What the kubelet insists on (pkg/kubelet/cm setupKernelTunables); faked for it alone."""
CONTAINERD: Final = "containerd"
KUBELET: Final = "kubelet"

Progress = Callable[[str], None]


class RealNodeError(RuntimeError):
    """The real node cannot run here or failed to start; the message says why."""


def kubelet_binary() -> Path:
    """The kubelet built by tests/cluster/kubelet/build.sh."""
    root = os.environ.get(KUBELET_CACHE_ENV)
    base = (
        Path(root).expanduser()
        if root
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "burstguard"
        / "kubelet"
    )
    return base / binaries.KUBE_VERSION / "kubelet"


def unavailable() -> str | None:
    """Why a real node cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (cgroups, mounts, a bridge)"
    if not os.access(kubelet_binary(), os.X_OK):
        return (
            f"no kubelet at {kubelet_binary()}: run `make setup` (tests/cluster/kubelet/build.sh)"
        )
    for tool in ("containerd", "ctr", "runc", "unshare", "nsenter", "ip", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run `make setup` (.ci/apt-packages.txt)"
    if not Path("/usr/lib/cni/bridge").is_file():
        return "CNI plugins missing (/usr/lib/cni): run `make setup`"
    if not (CGROUP_FS / "memory" / "cgroup.procs").exists():
        return "no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory"
    return None


@dataclass(frozen=True)
class Instance:
    """The names that make one real node unique on this machine."""

    ident: str
    """8 hex digits derived from the cluster directory."""
    subnet: str
    """Pod /24; its .1 is the node address on the bridge."""

    @property
    def bridge(self) -> str:
        """Bridge interface name (15 characters at most)."""
        return f"bgn{self.ident}"

    @property
    def cgroup_root(self) -> str:
        """The kubelet's cgroupRoot, in every v1 hierarchy."""
        return f"/burstguard-{self.ident}"

    @property
    def node_ip(self) -> str:
        """The node's InternalIP (on the bridge)."""
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False)
    nets = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False)
    for line in routes.stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            if first != "default":
                nets.append(ipaddress.IPv4Network(first, strict=False))
    return nets


def pick_instance(directory: Path) -> Instance:
    """An id from the directory and the first free /24 from its hash on."""
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()
    subnets = list(SUBNET_BASE.subnets(new_prefix=24))
    used = _used_networks()
    start = int(digest[8:16], 16) % len(subnets)
    for k in range(len(subnets)):
        net = subnets[(start + k) % len(subnets)]
        if not any(net.overlaps(u) for u in used):
            return Instance(digest[:8], str(net))
    raise RealNodeError(f"no free /24 in {SUBNET_BASE}")


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports (held open together while picking)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Layout:
    """Where one real node keeps its files: ``<cluster>/real-node``."""

    root: Path
    """The real node's directory."""

    def __getattr__(self, name: str) -> Path:
        paths = {
            "containerd_root": "containerd/root",
            "containerd_state": "containerd/state",
            "containerd_config": "containerd/config.toml",
            "containerd_socket": "containerd/containerd.sock",
            "kubelet_dir": "kubelet",
            "kubelet_config": "kubelet-config.yaml",
            "kubelet_kubeconfig": "kubelet.kubeconfig",
            "pod_logs": "pod-logs",
            "cni_conf": "cni/net.d",
            "cni_ipam": "cni/ipam",
            "sysctls": "sysctl",
            "volume_plugins": "volume-plugins",
        }
        if name in paths:
            return self.root / paths[name]
        raise AttributeError(name)


def containerd_config(layout: Layout) -> str:
    """containerd 1.6 configuration (version 2): everything under the node's directory."""
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{layout.containerd_socket}"
[ttrpc]
  address = ""
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.root / "containerd/opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{localimages.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf}"
    max_conf_num = 1
"""


def cni_config(layout: Layout, inst: Instance) -> dict[str, Any]:
    """bridge + host-local + loopback; no ipMasq, no portmap: CNI adds no iptables rule, and
    without isGateway it never turns on IP forwarding (the bridge's address is set here)."""
    net = ipaddress.IPv4Network(inst.subnet)
    return {
        "cniVersion": "0.4.0",
        "name": f"burstguard-{inst.ident}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": inst.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam),
                    "ranges": [
                        [
                            {
                                "subnet": inst.subnet,
                                "rangeStart": str(net.network_address + 2),
                                "rangeEnd": str(net.broadcast_address - 1),
                            }
                        ]
                    ],
                },
            }
        ],
    }


def kubelet_config(
    layout: Layout, inst: Instance, ca: Path, port: int, healthz_port: int
) -> dict[str, Any]:
    """KubeletConfiguration: the kubelet acts on its own pods and nothing else."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": inst.cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "protectKernelDefaults": True,
        "oomScoreAdj": 0,
        "makeIPTablesUtilChains": False,
        "address": inst.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "imageServiceEndpoint": f"unix://{layout.containerd_socket}",
        "podLogsDir": str(layout.pod_logs),
        "volumePluginDir": str(layout.volume_plugins),
        "resolvConf": "",
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "failSwapOn": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "nodeStatusReportFrequency": "10s",
        "maxPods": 110,
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": True,
        "shutdownGracePeriod": "0s",
    }


# Scripts run between unshare/nsenter and exec: mounts that only the node's namespace sees.
CONTAINERD_NS_SCRIPT: Final = """set -e
node="$1"; shift
mount --bind "$node" "$node"
mount --make-shared "$node"
for d in /run/containerd /var/lib/cni; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0755,size=64m burstguard-node "$d"
done
exec "$@"
"""
KUBELET_NS_SCRIPT: Final = """set -e
sys="$1"; shift
for f in "$sys"/*; do
  [ -e "$f" ] || continue
  mount --bind "$f" "/proc/sys/$(basename "$f" | tr . /)"
done
exec "$@"
"""


@dataclass
class RealNode:
    """A running (or recorded) real node of one cluster."""

    cluster_dir: Path
    """The cluster's directory."""
    instance: Instance
    """Bridge, subnet, cgroup root."""
    records: list[supervising.Record]
    """containerd and kubelet."""
    mount_ns: str
    """containerd's mount namespace (``mnt:[inode]``): every process in it is the node's."""
    kubelet_port: int
    """Kubelet server port on the node address."""
    detached: bool = True
    """Processes outlive this Python process."""
    ready_seconds: float = 0.0
    """Time from start to Ready, seconds."""

    @property
    def layout(self) -> Layout:
        """Where its files are."""
        return Layout(self.cluster_dir / "real-node")

    @property
    def name(self) -> str:
        """The node name."""
        return NODE_NAME

    @property
    def containerd_log(self) -> Path:
        """containerd's log (CRI logs every ``PullImage`` here)."""
        return self.cluster_dir / "logs" / "containerd.log"

    @property
    def kubelet_log(self) -> Path:
        """The kubelet's log."""
        return self.cluster_dir / "logs" / "kubelet.log"

    # -- start ----------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        cluster: cluster_.Cluster,
        *,
        timeout_s: float = READY_TIMEOUT_S,
        progress: Progress | None = None,
    ) -> RealNode:
        """Start containerd and a kubelet for ``cluster`` and wait until ``real-0`` is Ready."""
        say = progress or (lambda _m: None)
        why = unavailable()
        if why:
            raise RealNodeError(why)
        began = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            stale = cls.attach(cluster.directory)
            if stale is not None:
                say("removing the real node left from an earlier run")
                stale.stop()
        images = localimages.build(say)
        inst = pick_instance(cluster.directory)
        port, healthz = free_ports(2)
        node = cls(cluster.directory, inst, [], "", port, detached=cluster.detached)
        try:
            node._prepare(cluster, healthz)
            say(f"cgroup root {inst.cgroup_root}, bridge {inst.bridge} {inst.node_ip}/24")
            node._start_containerd(say)
            localimages.import_all(node.layout.containerd_socket, images.archives)
            say("images imported: " + ", ".join(w.name for w in images.archives))
            node._start_kubelet(say)
            node._wait_ready(cluster, began + timeout_s)
        except BaseException:
            node.stop()
            raise
        node.ready_seconds = time.monotonic() - began
        node._save()
        say(f"node {NODE_NAME} Ready in {node.ready_seconds:.1f} s")
        return node

    def _prepare(self, cluster: cluster_.Cluster, healthz_port: int) -> None:
        lay, inst = self.layout, self.instance
        for d in (
            lay.containerd_root,
            lay.containerd_state,
            lay.kubelet_dir,
            lay.pod_logs,
            lay.cni_conf,
            lay.cni_ipam,
            lay.sysctls,
            lay.volume_plugins,
        ):
            d.mkdir(parents=True, exist_ok=True)
        self._save()  # from here on, `stop` knows what to remove
        lay.containerd_config.write_text(containerd_config(lay))
        (lay.cni_conf / "10-burstguard.conflist").write_text(
            json.dumps(cni_config(lay, inst), indent=2)
        )
        ca = pki.read(cluster.layout.ca)
        client = pki.issue(
            ca, f"system:node:{NODE_NAME}", organizations=["system:nodes"], client=True
        )
        config = cluster_.kubeconfig(
            cluster.server, ca.cert_pem, client, f"system:node:{NODE_NAME}"
        )
        lay.kubelet_kubeconfig.touch(mode=0o600)
        lay.kubelet_kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        lay.kubelet_config.write_text(
            yaml.safe_dump(
                kubelet_config(lay, inst, cluster.ca_path, self.kubelet_port, healthz_port)
            )
        )
        for name, wanted in KUBELET_SYSCTLS.items():
            real = Path("/proc/sys", *name.split(".")).read_text().strip()
            if real != str(wanted):
                (lay.sysctls / name).write_text(f"{wanted}\n")
        _make_cgroups(inst.cgroup_root)
        net = ipaddress.IPv4Network(inst.subnet)
        _ip("link", "add", inst.bridge, "type", "bridge")
        _ip("addr", "add", f"{inst.node_ip}/{net.prefixlen}", "dev", inst.bridge)
        _ip("link", "set", inst.bridge, "up")

    def _spawn(self, name: str, argv: list[str], say: Progress) -> supervising.Record:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "NO_PROXY": "127.0.0.1,localhost",
            "HOME": str(self.layout.root),
        }
        record, _proc = supervising.spawn(
            name,
            argv,
            log=self.cluster_dir / "logs" / f"{name}.log",
            env=env,
            cwd=self.layout.root,
            die_with_parent=not self.detached,
        )
        self.records.append(record)
        self._save()
        say(f"started {name} (pid {record.pid})")
        return record

    def _start_containerd(self, say: Progress) -> None:
        lay = self.layout
        argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            CONTAINERD_NS_SCRIPT,
            "sh",
            str(lay.root),
            "containerd",
            "--config",
            str(lay.containerd_config),
        ]
        record = self._spawn(CONTAINERD, argv, say)
        deadline = time.monotonic() + 30
        while True:
            if not supervising.alive(record):
                raise RealNodeError(
                    f"containerd exited; last lines:\n{supervising.tail(record.log)}"
                )
            ns = _mount_ns(record.pid)
            if ns and ns != _mount_ns(os.getpid()) and lay.containerd_socket.exists():
                ok = (
                    subprocess.run(
                        ["ctr", "--address", str(lay.containerd_socket), "version"],
                        capture_output=True,
                        check=False,
                    ).returncode
                    == 0
                )
                if ok:
                    self.mount_ns = ns
                    self._save()
                    return
            if time.monotonic() > deadline:
                raise RealNodeError(f"containerd not ready; log:\n{supervising.tail(record.log)}")
            time.sleep(0.1)

    def _start_kubelet(self, say: Progress) -> None:
        lay = self.layout
        containerd = self.records[0]
        argv = [
            "nsenter",
            f"--mount=/proc/{containerd.pid}/ns/mnt",
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "unchanged",
            "--",
            "/bin/sh",
            "-c",
            KUBELET_NS_SCRIPT,
            "sh",
            str(lay.sysctls),
            str(kubelet_binary()),
            f"--config={lay.kubelet_config}",
            f"--kubeconfig={lay.kubelet_kubeconfig}",
            f"--root-dir={lay.kubelet_dir}",
            f"--cert-dir={lay.kubelet_dir / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.instance.node_ip}",
            f"--node-labels={cluster_.NODE_LABEL}={NODE_LABEL_VALUE}",
        ]
        self._spawn(KUBELET, argv, say)

    def _wait_ready(self, cluster: cluster_.Cluster, deadline: float) -> None:
        client = cluster.client()
        kubelet = self.records[-1]
        while True:
            if not supervising.alive(kubelet):
                raise RealNodeError(f"kubelet exited; last lines:\n{supervising.tail(kubelet.log)}")
            answer = client.call("GET", f"/api/v1/nodes/{NODE_NAME}")
            if answer.status == 200:
                conditions = answer.json().get("status", {}).get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    return
            if time.monotonic() > deadline:
                raise RealNodeError(
                    f"node {NODE_NAME} not Ready in time; kubelet log:\n"
                    f"{supervising.tail(kubelet.log, 30)}"
                )
            time.sleep(0.5)

    # -- state ------------------------------------------------------------------------------------

    def _save(self) -> None:
        state = {
            "node": NODE_NAME,
            "ident": self.instance.ident,
            "subnet": self.instance.subnet,
            "bridge": self.instance.bridge,
            "cgroup_root": self.instance.cgroup_root,
            "node_ip": self.instance.node_ip,
            "mount_ns": self.mount_ns,
            "kubelet_port": self.kubelet_port,
            "ready_seconds": round(self.ready_seconds, 2),
            "processes": [r.to_json() for r in self.records],
        }
        path = self.cluster_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def attach(cls, cluster_dir: Path | str) -> RealNode | None:
        """The real node recorded in a cluster directory, or None."""
        directory = Path(cluster_dir).resolve()
        try:
            state = json.loads((directory / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(
            directory,
            Instance(state["ident"], state["subnet"]),
            [supervising.Record.from_json(r) for r in state["processes"]],
            state.get("mount_ns", ""),
            int(state["kubelet_port"]),
            detached=True,
            ready_seconds=float(state.get("ready_seconds", 0.0)),
        )

    def is_running(self) -> bool:
        """Any recorded process alive."""
        return any(supervising.alive(r) for r in self.records)

    def import_image(self, archive: Path) -> str:
        """Import an ``oci-archive`` (``burstguard.images.oci.write``) into this node's runtime."""
        return localimages.import_archive(self.layout.containerd_socket, archive)

    # -- stop -------------------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Remove everything the node made; returns what could not be removed (empty = clean)."""
        inst = self.instance
        kubelet = [r for r in self.records if r.name == KUBELET]
        supervising.stop(kubelet, grace_s=10.0)
        # Containers: every process in the node's cgroup root is one of its pods'.
        for _ in range(3):
            for pid in _cgroup_pids(inst.cgroup_root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        containerd = [r for r in self.records if r.name == CONTAINERD]
        supervising.stop(containerd, grace_s=5.0)
        # Shims (their own process groups) and anything else left in containerd's namespace.
        deadline = time.monotonic() + 10
        while self.mount_ns and (left := _pids_in_mount_ns(self.mount_ns)):
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while not _remove_cgroups(inst.cgroup_root) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _link_exists(inst.bridge):
            for veth in _links_on(inst.bridge):
                _ip("link", "del", veth, check=False)
            _ip("link", "del", inst.bridge, check=False)
        problems = self.leftovers()
        if not any("mount" in p or "process" in p for p in problems):
            shutil.rmtree(self.layout.root, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.cluster_dir / STATE_FILE).unlink()
        return self.leftovers()

    def leftovers(self) -> list[str]:
        """What of this node still exists: processes, mounts, cgroups, links, iptables rules."""
        inst = self.instance
        out = [f"process {r.name} {r.pid}" for r in self.records if supervising.alive(r)]
        if self.mount_ns:
            out += [
                f"process {p} in the node's mount namespace"
                for p in _pids_in_mount_ns(self.mount_ns)
            ]
        out += [f"process {p} in {inst.cgroup_root}" for p in _cgroup_pids(inst.cgroup_root)]
        root = str(self.layout.root)
        out += [f"mount {m}" for m in _host_mounts() if m == root or m.startswith(root + "/")]
        out += [f"cgroup {d}" for d in _cgroup_dirs(inst.cgroup_root) if d.exists()]
        if _link_exists(inst.bridge):
            out.append(f"link {inst.bridge}")
        out += [f"iptables rule {r}" for r in iptables_rules_mentioning(inst.bridge, inst.subnet)]
        return out


# ---------------------------------------------------------------------------------------------
# Host helpers


def _ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RealNodeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _links_on(bridge: str) -> list[str]:
    brif = Path("/sys/class/net", bridge, "brif")
    return sorted(p.name for p in brif.iterdir()) if brif.is_dir() else []


def _mount_ns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return ""


def _pids_in_mount_ns(ns: str) -> list[int]:
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and int(e.name) != os.getpid() and _mount_ns(int(e.name)) == ns
    ]


def _host_mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        out.append(line.split()[4].replace("\\040", " "))
    return out


def _hierarchies() -> list[Path]:
    """Every cgroup v1 hierarchy (the empty v2 ``unified`` mount of a hybrid host excluded)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] == "cgroup":
            out.append(Path(left.split()[4]))
    return sorted(out)


def _cgroup_dirs(root: str) -> list[Path]:
    return [h / root.lstrip("/") for h in _hierarchies()]


def _make_cgroups(root: str) -> None:
    for d in _cgroup_dirs(root):
        d.mkdir(exist_ok=True)
        if (d.parent / "cpuset.cpus").exists():
            for f in ("cpuset.cpus", "cpuset.mems"):
                (d / f).write_text((d.parent / f).read_text())


def _cgroup_pids(root: str) -> list[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs(root):
        if not d.is_dir():
            continue
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def _remove_cgroups(root: str) -> bool:
    """rmdir the tree bottom-up in every hierarchy; True when all are gone."""
    for d in _cgroup_dirs(root):
        if not d.is_dir():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()
    return not any(d.exists() for d in _cgroup_dirs(root))


def iptables_rules_mentioning(*needles: str) -> list[str]:
    """iptables rules (IPv4, every table) naming the bridge or the subnet."""
    if shutil.which("iptables-save") is None:
        return []
    done = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    return [
        line
        for line in done.stdout.splitlines()
        if line.startswith("-A") and any(n in line for n in needles)
    ]
