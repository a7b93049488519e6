"""Write a directory tree as a one-layer OCI image archive, byte for byte reproducibly.

No daemon and no image tool: an oci-archive is a tar of an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/*``), which ``ctr images import``, ``kind load image-archive``,
``skopeo copy oci-archive:`` and ``podman load`` all read. Reproducible because every input to
the bytes is fixed here: entries sorted by path, mtime 0, owner root unless the caller says
otherwise, no user or group names, gzip header mtime 0, no ``created`` timestamp, JSON with
sorted keys. The same tree therefore always gives the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA = "application/vnd.oci.image.index.v1+json"
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of the image config (OCI image-spec ``config``)."""

    entrypoint: tuple[str, ...]
    """argv prefix of every container."""
    user: str
    """``uid:gid`` the container runs as unless the pod says otherwise."""
    env: tuple[str, ...] = ()
    """``NAME=value`` entries."""
    workdir: str = "/"
    """Working directory."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Image labels (``org.opencontainers.image.*``)."""


@dataclass(frozen=True)
class Written:
    """What was written: the digest a registry or runtime will show, and sizes in bytes."""

    manifest_digest: str
    config_digest: str
    layer_diff_id: str
    uncompressed_bytes: int
    archive_bytes: int


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)


def _entries(root: Path) -> Iterator[Path]:
    """Every path under ``root`` in byte order of its relative path (parents first)."""
    stack = [root]
    out: list[Path] = []
    while stack:
        d = stack.pop()
        for child in os.scandir(d):
            p = Path(child.path)
            out.append(p)
            if child.is_dir(follow_symlinks=False):
                stack.append(p)
    out.sort(key=lambda p: os.fsencode(p.relative_to(root)))
    yield from out


def write_layer(
    root: Path, dest: IO[bytes], owners: Mapping[str, tuple[int, int]]
) -> tuple[str, int]:
    """Tar ``root`` into ``dest`` (uncompressed); returns (``sha256:`` diff_id, size).

    ``owners`` maps a relative path to (uid, gid) for it and everything under it; every other
    entry is owned by root. Hard links are stored once and linked after.
    """
    counted = _Hashing(dest)
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=counted, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(root):
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = _owner(rel, owners)
            info.uname = info.gname = ""
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type = tarfile.LNKTYPE
                    info.linkname = seen[key]
                    tar.addfile(info)
                    continue
                seen[key] = rel
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                raise ValueError(f"{rel}: only directories, files and symlinks go into an image")
    return f"sha256:{counted.sha.hexdigest()}", counted.size


def _owner(rel: str, owners: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    for prefix, ids in owners.items():
        if rel == prefix or rel.startswith(prefix + "/"):
            return ids
    return (0, 0)


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    _add(tar, f"blobs/sha256/{digest}", io.BytesIO(data), len(data))
    return f"sha256:{digest}"


def _add(tar: tarfile.TarFile, name: str, f: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    tar.addfile(info, f)


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = tarfile.DIRTYPE, 0, 0o755
    tar.addfile(info)


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_archive(
    root: Path,
    dest: Path,
    config: ImageConfig,
    name: str,
    *,
    owners: Mapping[str, tuple[int, int]] | None = None,
    workdir: Path,
) -> Written:
    """Write ``root`` as the image ``name`` (``localhost/burstguard:0.1.0``) to ``dest``.

    ``workdir`` holds the compressed layer while its digest is computed (it is as large as the
    compressed image).
    """
    layer_path = workdir / "layer.tar.gz"
    with layer_path.open("wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
            diff_id, uncompressed = write_layer(root, gz, owners or {})  # type: ignore[arg-type]
    layer_digest, layer_size = f"sha256:{compressed.sha.hexdigest()}", compressed.size
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(config.entrypoint),
            "User": config.user,
            "Env": list(config.env),
            "WorkingDir": config.workdir,
            "Labels": dict(config.labels),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "deploy/image/build.py", "comment": "one layer"}],
    }
    config_bytes = _json(image_config)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _dir(tar, "blobs")
        _dir(tar, "blobs/sha256")
        config_digest = _blob(tar, config_bytes)
        with layer_path.open("rb") as f:
            _add(tar, f"blobs/sha256/{layer_digest.split(':')[1]}", f, layer_size)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA,
            "config": {
                "mediaType": CONFIG_MEDIA,
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [{"mediaType": LAYER_MEDIA, "digest": layer_digest, "size": layer_size}],
        }
        manifest_bytes = _json(manifest)
        manifest_digest = _blob(tar, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA,
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {CONTAINERD_NAME: name, OCI_REF_NAME: tag},
                }
            ],
        }
        index_bytes = _json(index)
        _add(tar, "index.json", io.BytesIO(index_bytes), len(index_bytes))
        layout = _json({"imageLayoutVersion": "1.0.0"})
        _add(tar, "oci-layout", io.BytesIO(layout), len(layout))
    layer_path.unlink()
    tmp.replace(dest)
    return Written(
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        layer_diff_id=diff_id,
        uncompressed_bytes=uncompressed,
        archive_bytes=dest.stat().st_size,
    )


def read_config(archive: Path) -> dict[str, Any]:
    """The image config of a one-image archive written by :func:`write_archive` (for checks)."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> Any:
            f = tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
            assert f is not None
            return json.load(f)

        f = tar.extractfile("index.json")
        assert f is not None
        index = json.load(f)
        manifest = blob(index["manifests"][0]["digest"])
        config: dict[str, Any] = blob(manifest["config"]["digest"])
        config["_index"] = index
        return config
