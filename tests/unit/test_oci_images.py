"""The OCI image writer: deterministic archives that containerd's importer can read, from
file lists (the test images) and from directory trees (``make image``)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from burstguard.images import oci

NAME = "localhost/burstguard/test:1"


def layers() -> list[oci.Layer]:
    return [
        oci.Layer.of([oci.Entry("bin/tool", data=b"\x7fELF", mode=0o755)]),
        oci.Layer.of([oci.Entry("data/b", data=b"b"), oci.Entry("/data/a", data=b"a")]),
    ]


def test_the_same_files_give_the_same_bytes_and_digest(tmp_path: Path) -> None:
    one = oci.write(tmp_path / "one.tar", NAME, layers(), oci.Config(entrypoint=["/bin/tool"]))
    shuffled = layers()
    shuffled[1] = oci.Layer.of(reversed(shuffled[1].entries))
    two = oci.write(tmp_path / "two.tar", NAME, shuffled, oci.Config(entrypoint=["/bin/tool"]))
    assert one.digest == two.digest
    assert one.path.read_bytes() == two.path.read_bytes()


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    base = oci.write(tmp_path / "a.tar", NAME, layers(), oci.Config())
    changed = layers()
    changed[1] = oci.Layer.of([oci.Entry("data/a", data=b"other")])
    assert oci.write(tmp_path / "b.tar", NAME, changed, oci.Config()).digest != base.digest


def test_layers_are_sorted_owned_by_root_and_dated_at_the_epoch() -> None:
    data = oci.layer_tar(layers()[1], epoch=0)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["data", "data/a", "data/b"]
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 and m.uname == "" for m in members)
    assert members[0].isdir()


def test_the_index_names_the_image_for_containerd_and_the_oci_layout(tmp_path: Path) -> None:
    written = oci.write(tmp_path / "x.tar", NAME, layers(), oci.Config())
    with tarfile.open(written.path) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        names = tar.getnames()
    annotations = index["manifests"][0]["annotations"]
    assert annotations[oci.ANNOTATION_CONTAINERD_NAME] == NAME
    assert annotations[oci.ANNOTATION_REF] == "1"
    assert index["manifests"][0]["digest"] == written.digest
    assert f"blobs/sha256/{written.digest.removeprefix('sha256:')}" in names
    assert "oci-layout" in names


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("pause:3.10", id="short-name-would-become-docker-io"),
        pytest.param("burstguard/pause:3.10", id="no-registry-host"),
        pytest.param("localhost/burstguard/pause", id="no-tag"),
    ],
)
def test_names_containerd_would_pull_from_the_internet_are_refused(name: str) -> None:
    with pytest.raises(oci.ImageError):
        oci.check_name(name)


def test_a_path_escaping_the_root_is_refused() -> None:
    with pytest.raises(oci.ImageError, match="bad path"):
        oci.layer_tar(oci.Layer.of([oci.Entry("../etc/passwd", data=b"x")]))


def tree(root: Path, files: dict[str, str], mtime: int) -> Path:
    """A root filesystem with a symlink and a hard link, every time set to ``mtime``."""
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


def from_tree(root: Path, dest: Path) -> oci.Written:
    config = oci.Config(entrypoint=("/usr/local/bin/burstguard",), user="65532:65532")
    layer = oci.Layer.from_directory(root)
    return oci.write(dest, "localhost/burstguard:0.1.0", [layer], config, compression="gzip")


FILES = {"usr/bin/python3.11": "elf", "etc/passwd": "root:x:0:0::/:/x\n", "a/b/c": "deep"}


def test_the_same_tree_built_twice_at_different_times_has_the_same_digest(tmp_path: Path) -> None:
    first = from_tree(tree(tmp_path / "one", FILES, mtime=1_000), tmp_path / "one.oci.tar")
    reordered = dict(reversed(list(FILES.items())))
    second = from_tree(
        tree(tmp_path / "two", reordered, mtime=2_000_000_000), tmp_path / "two.oci.tar"
    )
    assert first.digest == second.digest
    assert first.diff_ids == second.diff_ids
    assert first.path.read_bytes() == second.path.read_bytes()


def test_a_changed_file_in_a_tree_changes_the_digest(tmp_path: Path) -> None:
    first = from_tree(tree(tmp_path / "one", FILES, mtime=1_000), tmp_path / "one.oci.tar")
    changed = {**FILES, "a/b/c": "deeper"}
    second = from_tree(tree(tmp_path / "two", changed, mtime=1_000), tmp_path / "two.oci.tar")
    assert first.digest != second.digest


def test_a_gzip_tree_archive_names_the_image_and_keeps_links_and_the_runtime_config(
    tmp_path: Path,
) -> None:
    written = from_tree(tree(tmp_path / "one", FILES, mtime=1_000), tmp_path / "one.oci.tar")
    config = oci.read_config(written.path)
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/burstguard"]
    assert config["config"]["User"] == "65532:65532"
    assert config["rootfs"]["diff_ids"] == list(written.diff_ids)
    annotations = config["_index"]["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "localhost/burstguard:0.1.0"
    with tarfile.open(written.path) as outer:
        assert {"oci-layout", "index.json"} <= set(outer.getnames())
        manifest = outer.extractfile(f"blobs/sha256/{written.digest.split(':')[1]}")
        assert manifest is not None
        (layer_desc,) = json.load(manifest)["layers"]
        assert layer_desc["mediaType"] == oci.MEDIA_LAYER_GZIP
        layer = outer.extractfile(f"blobs/sha256/{layer_desc['digest'].split(':')[1]}")
        assert layer is not None
        raw = layer.read()
    assert len(raw) == layer_desc["size"]
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as inner:
        members = {m.name: m for m in inner.getmembers()}
    assert written.uncompressed_bytes > len(raw)
    assert members["usr/bin/python3"].issym()
    assert members["usr/bin/python3"].linkname == "python3.11"
    assert members["usr/bin/python3.11-hard"].islnk()
    assert members["usr/bin/python3.11-hard"].linkname == "usr/bin/python3.11"
    assert {m.mtime for m in members.values()} == {0}
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_owners_given_for_a_subtree_apply_to_everything_under_it(tmp_path: Path) -> None:
    root = tree(tmp_path / "one", FILES, mtime=1_000)
    layer = oci.Layer.from_directory(root, owners={"a": (65532, 65532)})
    with tarfile.open(fileobj=io.BytesIO(oci.layer_tar(layer))) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners["a"] == owners["a/b"] == owners["a/b/c"] == (65532, 65532)
    assert owners["etc/passwd"] == (0, 0)


def test_a_path_longer_than_a_plain_tar_header_is_kept_whole() -> None:
    deep = "usr/lib/python3/dist-packages/" + "x" * 120 + "/module.py"
    data = oci.layer_tar(oci.Layer.of([oci.Entry(deep, data=b"pass")]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert deep in tar.getnames()
