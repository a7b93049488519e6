"""The image runs burstguard as a non-root user, carries bpftrace, and nothing it does not need.

The entry point is run from the image's own root filesystem (chroot as the image's default
user), so the interpreter, the wheel's dependencies and the shared libraries are the image's,
not this machine's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.image import images

MIB = 1 << 20
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def in_image(rootfs: Path, user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROOT, f"--userspec={user}", str(rootfs), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"},
        check=False,
    )


def test_the_config_runs_burstguard_as_a_non_root_user(image: images.Image) -> None:
    config = image.config["config"]
    assert Path(config["Entrypoint"][0]).name == "burstguard"
    uid, _, gid = config["User"].partition(":")
    assert int(uid) != 0 and int(gid) != 0
    index = image.config["_index"]["manifests"][0]
    assert index["annotations"]["io.containerd.image.name"] == image.name
    assert image.name.startswith("localhost/burstguard:")
    print(f"\n{image.name} {image.digest} {image.uncompressed_bytes / MIB:.1f} MiB uncompressed")


def test_the_entrypoint_prints_its_help_as_the_default_user(
    image: images.Image, rootfs: Path
) -> None:
    done = in_image(
        rootfs, image.config["config"]["User"], *image.config["config"]["Entrypoint"], "--help"
    )
    assert done.returncode == 0, done.stderr
    for command in ("operator", "agent", "release", "doctor"):
        assert command in done.stdout


def test_the_operator_and_agent_import_with_the_image_dependencies_only(
    image: images.Image, rootfs: Path
) -> None:
    code = (
        "import os, importlib.util as u\n"
        "import burstguard.operator.handlers, burstguard.agent.sampling, burstguard.cli.agent\n"
        "import burstguard.k8s.nodes\n"
        "import kubernetes.aio.client, kopf, prometheus_api_client\n"
        "print(os.getuid(), u.find_spec('matplotlib'), u.find_spec('pip'))\n"
    )
    done = in_image(rootfs, image.config["config"]["User"], "python3", "-c", code)
    assert done.returncode == 0, done.stderr
    uid, matplotlib, pip = done.stdout.split()
    assert uid == image.config["config"]["User"].split(":")[0]
    assert (matplotlib, pip) == ("None", "None")


def test_bpftrace_runs_from_the_image(image: images.Image, rootfs: Path) -> None:
    done = in_image(rootfs, "0:0", "bpftrace", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bpftrace v")


def test_the_image_has_no_compiler_package_manager_or_caches(rootfs: Path) -> None:
    names = {
        "gcc",
        "cc",
        "c++",
        "g++",
        "clang",
        "ld",
        "as",
        "pip",
        "pip3",
        "apt",
        "apt-get",
        "dpkg",
    }
    found = [
        str(p.relative_to(rootfs))
        for d in ("usr/bin", "usr/local/bin", "bin", "usr/sbin", "sbin")
        if (rootfs / d).is_dir()
        for p in (rootfs / d).iterdir()
        if p.name in names
    ]
    assert found == []
    for cache in ("var/cache", "var/lib/apt", "var/lib/dpkg", "root/.cache", "usr/share/doc"):
        assert not (rootfs / cache).exists(), cache
    assert not list(rootfs.rglob("*.deb"))
