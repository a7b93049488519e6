"""The real Kueue controller-manager for cluster tests, built by tests/cluster/kueue/build.sh.

Kueue runs as a process against the local apiserver with its CRDs installed from the same
release. Its webhooks are not registered: the tests create Jobs already suspended and pods
already carrying Kueue's gate and ``managed`` label, which is what the webhooks would add,
and Kueue's controllers (Job and pod integrations, the scheduler) run as released. Two paths
are fixed in this release's binary, so they are given as follows:

- the metrics server reads its certificate from ``/etc/kueue/metrics/certs``: the process
  runs in a private mount namespace with an overlay on ``/etc`` holding a test certificate,
  which vanishes with the process and never touches the host's ``/etc``;
- the visibility API server reads ``/visibility/tls.crt``: it is turned off
  (``VisibilityOnDemand=false``); nothing here uses it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from burstguard.operator import certificates

VERSION = "v0.17.0"
"""The release tests/cluster/kueue/build.sh builds (KUEUE_VERSION there)."""


def install_dir() -> Path:
    tools = os.environ.get("BURSTGUARD_TOOLS") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "burstguard" / "tools"
    )
    return Path(tools) / f"kueue-{VERSION}"


def built() -> bool:
    d = install_dir()
    return (d / "kueue").is_file() and (d / "crds" / ".done").is_file()


class KueueProcess:
    """One kueue controller-manager; ``start`` installs the CRDs first."""

    def __init__(self, kubeconfig: Path, kubectl: Path, workdir: Path, port_base: int) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl
        self.workdir = workdir
        self.port_base = port_base
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kueue.log"

    def _config(self) -> Path:
        certs = self.workdir / "certs"
        certificates.ensure(certs, ["127.0.0.1", "localhost"])
        overlay = self.workdir / "etc-upper" / "kueue" / "metrics" / "certs"
        overlay.mkdir(parents=True, exist_ok=True)
        for name in ("tls.crt", "tls.key"):
            shutil.copy(certs / name, overlay / name)
        (self.workdir / "etc-work").mkdir(exist_ok=True)
        config = self.workdir / "config.yaml"
        config.write_text(
            "apiVersion: config.kueue.x-k8s.io/v1beta2\n"
            "kind: Configuration\n"
            f"health: {{healthProbeBindAddress: '127.0.0.1:{self.port_base}'}}\n"
            "metrics: {bindAddress: '0'}\n"
            f"webhook: {{port: {self.port_base + 1}, host: 127.0.0.1, certDir: '{certs}'}}\n"
            "leaderElection: {leaderElect: false}\n"
            "internalCertManagement: {enable: false}\n"
            "integrations: {frameworks: [batch/job, pod]}\n"
        )
        return config

    def start(self, timeout_s: float = 60.0) -> None:
        d = install_dir()
        subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "apply",
             "--server-side", "-f", str(d / "crds")],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "wait",
             "--for=condition=Established", "--timeout=60s", "-f", str(d / "crds")],
            check=True, capture_output=True,
        )  # fmt: skip
        config = self._config()
        upper, work = self.workdir / "etc-upper", self.workdir / "etc-work"
        script = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
            f" && exec {d / 'kueue'} --config {config} --kubeconfig {self.kubeconfig}"
            " --feature-gates=VisibilityOnDemand=false"
        )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kueue exited {self.proc.returncode}:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port_base}/readyz", timeout=1),
            ):
                return
            time.sleep(0.3)
        raise AssertionError(f"kueue not ready after {timeout_s}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
