"""``burstguard operator --kubeconfig PATH`` authenticates with that file alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.cluster import operating
from tests.conftest import ClusterFixture


def test_the_kubeconfig_flag_alone_logs_the_operator_in(
    cluster: ClusterFixture, tmp_path: Path
) -> None:
    metrics_port = operating.free_port()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config to fall back on
    log = tmp_path / "operator.log"
    argv = [
        sys.executable, "-m", "burstguard.cli.main", "operator",
        f"--kubeconfig={cluster.kubeconfig_path}", "--standalone", "--install-crd",
        "--webhook-host=127.0.0.1", f"--webhook-port={operating.free_port()}",
        f"--metrics-port={metrics_port}", f"--cert-dir={tmp_path / 'certs'}",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None and not ready:
            text = log.read_text(errors="replace")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1)
                ready = "Activity 'login' succeeded" in text
            time.sleep(0.3)
        text = log.read_text(errors="replace")
        assert ready, f"operator not logged in within 60 s:\n{text[-3000:]}"
        assert "Ran out of valid credentials" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
