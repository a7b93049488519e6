"""The OCI image writer: deterministic archives that containerd's importer can read."""

from __future__ import annotations

import io
import json
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
        oci.blobs(name, layers(), oci.Config())


def test_a_path_escaping_the_root_is_refused() -> None:
    with pytest.raises(oci.ImageError, match="bad path"):
        oci.layer_tar(oci.Layer.of([oci.Entry("../etc/passwd", data=b"x")]))
