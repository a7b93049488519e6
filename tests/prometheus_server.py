"""A real Prometheus server for tests (Debian package ``prometheus``, .ci/apt-packages.txt).

``running(targets, tmp)`` writes a temporary config scraping each target every
``scrape_interval_s`` with the target's Node name in the ``instance`` label (as the chart's
ServiceMonitor relabels it), starts ``prometheus`` on a free 127.0.0.1 port with its TSDB in
``tmp``, waits until it is ready, and stops it (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml


def binary() -> str:
    """The prometheus executable; fails under CI, skips elsewhere when missing."""
    found = shutil.which("prometheus")
    if found is None:
        reason = "prometheus not installed (Debian package `prometheus`, run `make setup`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running Prometheus."""

    url: str
    """Base URL."""
    process: subprocess.Popen[bytes]
    """The server process."""
    log: Path
    """Its log file."""

    def wait_for(self, query: str, timeout_s: float = 30.0) -> None:
        """Wait until ``query`` returns a non-empty result."""
        deadline = time.monotonic() + timeout_s
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as answer,
            ):
                if b'"result":[]' not in answer.read():
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{query!r} still empty after {timeout_s} s; log {self.log}")


@contextlib.contextmanager
def running(
    targets: Mapping[str, str], tmp: Path, scrape_interval_s: float = 1.0
) -> Iterator[Server]:
    """Prometheus scraping ``{node name: host:port}``, each under ``instance=<node>``."""
    exe = binary()
    port = free_port()
    config = {
        "global": {
            "scrape_interval": f"{scrape_interval_s:g}s",
            "evaluation_interval": f"{scrape_interval_s:g}s",
        },
        "scrape_configs": [
            {
                "job_name": "burstguard-agent",
                "static_configs": [
                    {"targets": [address], "labels": {"node_name": node}}
                    for node, address in targets.items()
                ],
                "relabel_configs": [
                    {"source_labels": ["node_name"], "target_label": "instance"},
                    {"regex": "node_name", "action": "labeldrop"},
                ],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as answer,
            ):
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready; log {log}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
