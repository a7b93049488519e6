"""containerd imports the archive under the chart's default name and runs its entrypoint.

A private containerd (own root, state and socket under a temporary directory, CRI plugin off,
so it shares nothing with the node's or another test's runtime) imports
``dist/burstguard-<version>.oci.tar`` with ``ctr images import --digests``, exactly as the
README tells node owners to; runc then starts the image's own entrypoint as its own default
user on a read-only root filesystem, as the chart runs it. Everything it started and mounted
is stopped and removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chart import render
from tests.image import images

NAMESPACE = "burstguard-image-test"


@dataclass(frozen=True)
class Containerd:
    """A running private containerd and the ``ctr`` argv prefix that talks to it."""

    ctr: tuple[str, ...]

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ctr, *args], capture_output=True, text=True, timeout=timeout, check=False
        )


def _unmount_under(root: Path) -> None:
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(root))
    ]
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    binary, ctr, runc = shutil.which("containerd"), shutil.which("ctr"), shutil.which("runc")
    if not (binary and ctr and runc):
        pytest.skip("containerd, ctr or runc is not installed (the real-node layer installs them)")
    if os.geteuid() != 0:
        pytest.skip("a private containerd needs root")
    # A short path: the socket path must fit in sun_path (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="bg-ctd-", dir="/tmp"))
    sock = root / "c.sock"
    config = root / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{root}/root"\n'
        f'state = "{root}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
        f'[ttrpc]\n  address = "{sock}.ttrpc"\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root}/opt"\n'
    )
    log = (root / "containerd.log").open("wb")
    proc = subprocess.Popen([binary, "--config", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, (root / "containerd.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "containerd did not open its socket in 30 s"
            time.sleep(0.2)
        yield Containerd((ctr, "--address", str(sock), "--namespace", NAMESPACE))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def imported(containerd: Containerd, image: images.Image) -> images.Image:
    repository = image.name.rsplit(":", 1)[0]
    done = containerd(
        "images", "import", "--base-name", repository, "--digests", str(image.archive)
    )
    assert done.returncode == 0, done.stderr
    return image


def run(
    containerd: Containerd, image: images.Image, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run a container of ``image`` (its entrypoint unless ``args``), read-only root, no network."""
    name = f"bg-{uuid.uuid4().hex[:8]}"
    try:
        return containerd("run", "--rm", "--read-only", image.name, name, *args, timeout=120)
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            containerd("tasks", "kill", "-s", "SIGKILL", name, timeout=20)
            containerd("containers", "delete", name, timeout=20)


def test_the_runtime_knows_the_image_by_the_charts_default_name_and_by_its_digest(
    containerd: Containerd, imported: images.Image
) -> None:
    listed = set(containerd("images", "ls", "-q").stdout.split())
    repository = imported.name.rsplit(":", 1)[0]
    assert imported.name in listed
    assert f"{repository}@{imported.digest}" in listed
    render.require_tools()
    chart_images = {
        c["image"]
        for doc in render.objects()
        if doc["kind"] in ("Deployment", "DaemonSet")
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    assert chart_images == {imported.name}


def test_runc_starts_the_entrypoint_as_the_default_user_on_a_read_only_root(
    containerd: Containerd, imported: images.Image
) -> None:
    done = run(containerd, imported)  # no arguments: the click group prints its usage
    assert "Usage: burstguard" in done.stdout + done.stderr, done.stderr
    probe = "import os, burstguard.cli.operator; print(os.getuid(), os.getgid())"
    done = run(containerd, imported, "python3", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == imported.config["config"]["User"].split(":")
