"""The agent's least-privilege modes are enough, checked on this machine's real kernel.

The chart runs the observing agent as uid 65534 with every capability dropped, and the
preparing agent as uid 0, again with no capability. No container runtime runs here, so the
same identities are reproduced with ``setpriv`` (uid, gid, empty capability sets,
no_new_privs) around the project's own procfs reader and around the sysctl write that
compaction needs. The uids come from the rendered DaemonSet, so a chart change that breaks
them fails here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart import render, tools

pytestmark = pytest.mark.node

SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/bin/python3.11")
"""Interpreters any uid may run (the venv's may live under /root, mode 0700); Debian's
python3.11-minimal is installed for the lab layer (.ci/apt-packages.txt)."""

SAMPLE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from burstguard.procfs import reading, snapshot
s = snapshot.read("/proc", time.time())
symbols = reading.find_words("/proc", "kallsyms", ("shrinker_rwsem", "shrinker_mutex"))
print(json.dumps({"zones": len(s.zones), "vmstat": len(s.vmstat),
                  "psi": s.pressure is not None, "kallsyms": symbols is not None}))
"""


def agent_uid(values: dict[str, Any]) -> int:
    """``runAsUser`` of the agent container rendered with ``values``."""
    render.require_tools()
    daemonset = render.pick(render.objects(values), "DaemonSet")
    uid: int = daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "runAsUser"
    ]
    return uid


def as_identity(uid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``uid``/``uid`` with no supplementary groups and no capabilities."""
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            *argv,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd="/",
    )


@contextlib.contextmanager
def readable_copy() -> Iterator[Path]:
    """burstguard.procfs (and the settings it reads) in a world-readable folder: the checkout
    may sit under /root."""
    folder = Path(tempfile.mkdtemp(prefix="bg-privileges-"))
    try:
        package = folder / "burstguard"
        shutil.copytree(tools.REPO / "burstguard" / "procfs", package / "procfs")
        (package / "__init__.py").write_text("")
        shutil.copy(tools.REPO / "burstguard" / "settings.py", package / "settings.py")
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.fixture(autouse=True)
def root_and_setpriv() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to the agent's identities needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")


OBSERVING = {"agent": {"preparation": {"enabled": False}}}
"""The agent observing only (preparation is on by default): the non-root identity."""


def test_the_observing_agents_identity_samples_the_host_proc_without_capabilities() -> None:
    uid = agent_uid(OBSERVING)
    assert uid != 0
    python = next((p for p in SYSTEM_PYTHONS if os.access(p, os.X_OK)), None)
    if python is None:
        pytest.skip(f"none of {SYSTEM_PYTHONS}: no interpreter the agent's uid may run")
    with readable_copy() as root:
        done = as_identity(uid, [python, "-c", SAMPLE, str(root)])
    assert done.returncode == 0, done.stderr
    sample = json.loads(done.stdout)
    assert sample["zones"] > 0
    assert sample["vmstat"] > 0
    assert sample["kallsyms"] is True


def test_the_preparing_agents_identity_writes_vm_sysctls_without_capabilities() -> None:
    uid = agent_uid({"agent": {"preparation": {"enabled": True}}})
    compact = ["sh", "-c", "echo 1 > /proc/sys/vm/compact_memory"]
    done = as_identity(uid, compact)
    assert done.returncode == 0, done.stderr
    # and uid 0 is what makes it work: the observing identity is refused the same write.
    refused = as_identity(agent_uid(OBSERVING), compact)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
