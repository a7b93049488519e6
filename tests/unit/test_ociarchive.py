"""The oci-archive writer: the same tree gives the same digest, whatever its mtimes and order.

This is what makes ``make image`` reproducible: the root filesystem is assembled fresh each
time (new mtimes, new inode order), and only its contents may reach the digest.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from tests.image import images

ociarchive = images.load("ociarchive")
CONFIG = ociarchive.ImageConfig(entrypoint=("/usr/local/bin/burstguard",), user="65532:65532")


def tree(root: Path, files: dict[str, str], mtime: int) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/bin/python3").symlink_to("python3.11")
    os.link(root / "usr/bin/python3.11", root / "usr/bin/python3.11-hard")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(Path(dirpath) / n, (mtime, mtime), follow_symlinks=False)
    return root


def write(root: Path, tmp: Path, name: str) -> Any:
    work = tmp / f"work-{name}"
    work.mkdir()
    return ociarchive.write_archive(
        root, tmp / f"{name}.oci.tar", CONFIG, "localhost/burstguard:0.1.0", workdir=work
    )


FILES = {"usr/bin/python3.11": "elf", "etc/passwd": "root:x:0:0::/:/x\n", "a/b/c": "deep"}


def test_the_same_tree_built_twice_at_different_times_has_the_same_digest(tmp_path: Path) -> None:
    first = write(tree(tmp_path / "one", FILES, mtime=1_000), tmp_path, "one")
    reordered = dict(reversed(list(FILES.items())))
    second = write(tree(tmp_path / "two", reordered, mtime=2_000_000_000), tmp_path, "two")
    assert first == second
    assert (tmp_path / "one.oci.tar").read_bytes() == (tmp_path / "two.oci.tar").read_bytes()


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    first = write(tree(tmp_path / "one", FILES, mtime=1_000), tmp_path, "one")
    changed = {**FILES, "a/b/c": "deeper"}
    second = write(tree(tmp_path / "two", changed, mtime=1_000), tmp_path, "two")
    assert first.manifest_digest != second.manifest_digest


def test_the_archive_names_the_image_and_keeps_links_and_the_runtime_config(
    tmp_path: Path,
) -> None:
    written = write(tree(tmp_path / "one", FILES, mtime=1_000), tmp_path, "one")
    config = ociarchive.read_config(tmp_path / "one.oci.tar")
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/burstguard"]
    assert config["config"]["User"] == "65532:65532"
    annotations = config["_index"]["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "localhost/burstguard:0.1.0"
    with tarfile.open(tmp_path / "one.oci.tar") as outer:
        assert {"oci-layout", "index.json"} <= set(outer.getnames())
        manifest = outer.extractfile(f"blobs/sha256/{written.manifest_digest.split(':')[1]}")
        assert manifest is not None
        layer_digest = json.load(manifest)["layers"][0]["digest"].split(":")[1]
        layer = outer.extractfile(f"blobs/sha256/{layer_digest}")
        assert layer is not None
        with tarfile.open(fileobj=layer, mode="r:gz") as inner:
            members = {m.name: m for m in inner.getmembers()}
    assert members["usr/bin/python3"].issym()
    assert members["usr/bin/python3"].linkname == "python3.11"
    assert members["usr/bin/python3.11-hard"].islnk()
    assert {m.mtime for m in members.values()} == {0}
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
