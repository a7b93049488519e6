"""The image under test: ``dist/burstguard-<version>.oci.tar``, built by ``make image``.

The fixture builds it when the archive is missing or its stamp does not match the sources
(``deploy/image/build.py`` decides; an up-to-date archive costs a second), so the tests always
look at the image of the code they run with. Building needs root and apt; without them the
image tests skip, saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from burstguard.images import oci

REPO: Final = Path(__file__).resolve().parents[2]
BUILDER: Final = REPO / "deploy" / "image" / "build.py"


def load(name: str) -> ModuleType:
    """A module of deploy/image/ (a build tool, not part of the installed package)."""
    path = REPO / "deploy" / "image" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"burstguard_image_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Image:
    """A built image archive and what its stamp says about it."""

    archive: Path
    name: str
    """``localhost/burstguard:<version>``."""
    digest: str
    """Manifest digest, ``sha256:...``."""
    uncompressed_bytes: int
    config: dict[str, Any]
    """The OCI image config (``config.Entrypoint``, ``config.User``...)."""


def missing_capability() -> str | None:
    """Why this machine cannot build the image, or None."""
    if os.geteuid() != 0:
        return "building the image needs root (dpkg-deb ownership, ldconfig -r)"
    for tool in ("apt-cache", "apt-get", "dpkg-deb", "ldconfig"):
        if shutil.which(tool) is None:
            return f"building the image needs {tool} (Debian)"
    return None


def build() -> Image:
    """Run ``make image``'s builder (a no-op when the stamp matches) and describe its output."""
    subprocess.run([sys.executable, str(BUILDER)], check=True, cwd=REPO)
    stamp = next((REPO / "dist").glob("burstguard-*.oci.tar.stamp"))
    saved = json.loads(stamp.read_text())
    archive = Path(saved["archive"])
    config = oci.read_config(archive)
    return Image(archive, saved["name"], saved["digest"], saved["uncompressed_bytes"], config)


def extract_rootfs(image: Image, dest: Path) -> Path:
    """Unpack the image's one layer into ``dest`` (owners and modes kept: run as root)."""
    with tarfile.open(image.archive) as outer:
        manifest_digest = image.config["_index"]["manifests"][0]["digest"].split(":")[1]
        f = outer.extractfile(f"blobs/sha256/{manifest_digest}")
        assert f is not None
        layer = json.load(f)["layers"][0]["digest"].split(":")[1]
        blob = outer.extractfile(f"blobs/sha256/{layer}")
        assert blob is not None
        with tarfile.open(fileobj=blob, mode="r|gz") as inner:
            inner.extractall(dest, filter="fully_trusted")  # our own archive; keeps owners
    dest.chmod(0o755)  # the container's / (a runtime creates it so; the layer has no entry)
    return dest
