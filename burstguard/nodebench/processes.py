"""The operator and the agent as child processes of the benchmark, stopped by pid.

The operator runs as ``burstguard demo`` runs it (webhook registered by URL, standalone). The
agent runs as a host process on the real node's /proc with a token bound to a pod there
(``k8s.agentidentity``), so it publishes through the own-Node admission policy as the
DaemonSet would. ``prepare`` runs it as the chart's defaults do (executing preparation with
clean page-cache drops allowed); without it the agent only observes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A ``burstguard`` sub-command in its own session, its output in ``log``."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "burstguard.cli.main", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", **(env or {})},
                start_new_session=True,
            )

    def wait_http(self, url: str, timeout_s: float = 90.0) -> None:
        """Until ``url`` answers; raise with the log's path if the child exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
                return
            time.sleep(0.3)
        raise RuntimeError(f"not ready after {timeout_s:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def operator(kubeconfig: Path, workdir: Path, namespace: str) -> tuple[Child, int]:
    """Start the operator; returns it and its metrics port."""
    port = free_port()
    child = Child(
        [
            "operator",
            f"--kubeconfig={kubeconfig}",
            "--webhook-host=127.0.0.1",
            f"--webhook-port={free_port()}",
            f"--cert-dir={workdir / 'operator-certs'}",
            f"--metrics-port={port}",
            "--register-webhook",
            "--install-crd",
            "--standalone",
            f"--exclude-namespace={namespace}",
            "--log-format=text",
        ],
        workdir / "operator.log",
        # kopf's login reads the environment, not the --kubeconfig flag
        env={"KUBECONFIG": str(kubeconfig)},
    )
    child.wait_http(f"http://127.0.0.1:{port}/metrics")
    return child, port


def token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the admin one's server and CA and ``token`` as the only credential."""
    cfg = yaml.safe_load(admin.read_text())
    cfg["users"] = [{"name": "agent", "user": {"token": token}}]
    for ctx in cfg.get("contexts") or []:
        ctx["context"]["user"] = "agent"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def agent(node: str, kubeconfig: Path, workdir: Path, *, prepare: bool) -> Child:
    """Start the agent for ``node`` (observing, or executing with drop_caches allowed)."""
    port = free_port()
    argv = [
        "agent",
        f"--node-name={node}",
        f"--kubeconfig={kubeconfig}",
        f"--metrics-port={port}",
        "--metrics-host=127.0.0.1",
        "--no-bpf",
    ]
    if prepare:
        argv += ["--prepare", "--drop-page-cache"]
    child = Child(argv, workdir / f"agent-{'prepare' if prepare else 'observe'}.log")
    child.wait_http(f"http://127.0.0.1:{port}/metrics", timeout_s=30)
    return child
