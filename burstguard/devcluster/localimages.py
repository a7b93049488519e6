"""The real node's images, built here and imported into its containerd: nothing is pulled.

- ``localhost/burstguard/pause:3.10``: a static build (``gcc -static``) of
  ``build/pause/linux/pause.c`` from the pinned ``k8s.io/kubernetes`` module (already in Go's
  module cache after ``make setup``). A sandbox needs a process that stays alive: pause.
- ``localhost/burstguard/workload:v1``: ``node/workload.c`` (static) plus ``DATA_FILES`` files
  under ``/data`` that it reads at start, so a start touches the image's layers.

Archives are written by ``burstguard.images.oci`` (deterministic: same inputs, same digest) into
``~/.cache/burstguard/images/<key>/``, keyed on the sources and the compiler, and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from burstguard.devcluster import binaries
from burstguard.images import oci

PAUSE_IMAGE: Final = "localhost/burstguard/pause:3.10"
"""The sandbox image containerd's CRI is configured with."""
WORKLOAD_IMAGE: Final = "localhost/burstguard/workload:v1"
"""The burst workload: ``workload MIB SECONDS [DIR]``."""
DATA_FILES: Final = 8
"""Files under ``/data`` in the workload image."""
DATA_FILE_BYTES: Final = 256 * 1024
"""Size of each, bytes (deterministic content)."""

WORKLOAD_SOURCE: Final = Path(__file__).parent / "node" / "workload.c"


class ImageBuildError(RuntimeError):
    """gcc or the pause source is missing, or a build failed; the message says what to do."""


@dataclass(frozen=True)
class Built:
    """The image archives of one build."""

    archives: tuple[oci.Written, ...]
    """One per image."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/burstguard/images``."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "burstguard" / "images"


def pause_source() -> Path:
    """``pause.c`` of the pinned kubernetes module, from Go's module cache (downloaded if not)."""
    try:
        modcache = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ImageBuildError(
            f"cannot ask go for its module cache ({exc}); run `make setup`"
        ) from exc
    path = Path(modcache) / f"k8s.io/kubernetes@{binaries.KUBE_VERSION}/build/pause/linux/pause.c"
    if not path.is_file():
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{binaries.KUBE_VERSION}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise ImageBuildError(f"go mod download k8s.io/kubernetes failed: {out.stderr[-500:]}")
        path = Path(json.loads(out.stdout)["Dir"]) / "build/pause/linux/pause.c"
    return path


def _gcc(source: Path, output: Path, *defines: str) -> None:
    if shutil.which("gcc") is None:
        raise ImageBuildError("gcc is missing: run `make setup` (.ci/apt-packages.txt)")
    argv = ["gcc", "-O2", "-static", "-Wall", *defines, "-o", str(output), str(source)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")


def _data(index: int) -> bytes:
    seed = hashlib.sha256(f"burstguard-workload-{index}".encode()).digest()
    return (seed * (DATA_FILE_BYTES // len(seed) + 1))[:DATA_FILE_BYTES]


def build(progress: Callable[[str], None] | None = None) -> Built:
    """Build (or reuse) the pause and workload archives."""
    say = progress or (lambda _m: None)
    pause_c = pause_source()
    gcc_version = subprocess.run(
        ["gcc", "-dumpfullversion"], capture_output=True, text=True, check=False
    ).stdout.strip()
    key = hashlib.sha256(
        b"\0".join(
            [
                pause_c.read_bytes(),
                WORKLOAD_SOURCE.read_bytes(),
                Path(oci.__file__).read_bytes(),
                gcc_version.encode(),
                f"{DATA_FILES}/{DATA_FILE_BYTES}".encode(),
            ]
        )
    ).hexdigest()[:16]
    dest = cache_root() / key
    names = {PAUSE_IMAGE: dest / "pause.tar", WORKLOAD_IMAGE: dest / "workload.tar"}
    manifest = dest / "images.json"
    if manifest.is_file() and all(p.is_file() for p in names.values()):
        recorded = json.loads(manifest.read_text())
        return Built(
            tuple(
                oci.Written(Path(r["path"]), r["name"], r["digest"], int(r["size"]))
                for r in recorded
            )
        )
    say(f"building images pause and workload into {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        work = Path(tmp)
        _gcc(pause_c, work / "pause", "-DVERSION=v3.10-burstguard")
        _gcc(WORKLOAD_SOURCE, work / "workload")
        pause = oci.write(
            names[PAUSE_IMAGE],
            PAUSE_IMAGE,
            [oci.Layer.of([oci.Entry("pause", data=(work / "pause").read_bytes(), mode=0o755)])],
            oci.Config(entrypoint=["/pause"], user="65535:65535"),
        )
        workload = oci.write(
            names[WORKLOAD_IMAGE],
            WORKLOAD_IMAGE,
            [
                oci.Layer.of(
                    [oci.Entry("workload", data=(work / "workload").read_bytes(), mode=0o755)]
                ),
                oci.Layer.of(
                    oci.Entry(f"data/file-{i:02d}", data=_data(i)) for i in range(DATA_FILES)
                ),
            ],
            oci.Config(entrypoint=["/workload"], cmd=["16", "1"]),
        )
    written = (pause, workload)
    manifest.write_text(
        json.dumps(
            [
                {"path": str(w.path), "name": w.name, "digest": w.digest, "size": w.size}
                for w in written
            ],
            indent=2,
        )
    )
    for w in written:
        say(f"image {w.name} {w.digest} ({w.size} bytes)")
    return Built(written)


UNPACKED: Final = re.compile(r"^unpacking (\S+) \((sha256:[0-9a-f]{64})\)", re.MULTILINE)
"""``ctr images import`` output line: the name it imported and the manifest digest."""


def digest_reference(name: str, digest: str) -> str:
    """``repo@sha256:...`` for ``repo:tag`` (what a pod spec holds when a chart pins a digest)."""
    last = name.rsplit("/", 1)
    repository = name.rsplit(":", 1)[0] if ":" in last[-1] else name
    return f"{repository}@{digest}"


def import_archive(socket: Path, archive: Path) -> str:
    """``ctr -n k8s.io images import`` of one archive into the containerd at ``socket``.

    Each imported image is also named by digest (``repo@sha256:...``): the CRI resolves an
    image only by a name it holds, and a chart with ``image.digest`` set asks for that one, so
    without it the kubelet reports ErrImageNeverPull for an image it has.
    """
    ctr = ["ctr", "--address", str(socket), "-n", "k8s.io", "images"]
    argv = [*ctr, "import", str(archive)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv)} failed: {done.stderr.strip()[-1000:]}")
    for name, digest in UNPACKED.findall(done.stdout):
        tag = [*ctr, "tag", "--force", name, digest_reference(name, digest)]
        tagged = subprocess.run(tag, capture_output=True, text=True, check=False)
        if tagged.returncode != 0:
            raise ImageBuildError(f"{' '.join(tag)} failed: {tagged.stderr.strip()[-1000:]}")
    return done.stdout.strip()


def import_all(socket: Path, archives: Sequence[oci.Written]) -> None:
    """Import every archive."""
    for written in archives:
        import_archive(socket, written.path)
