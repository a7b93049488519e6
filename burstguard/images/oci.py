"""The one OCI image writer: layers of files in, a deterministic ``oci-archive`` tar out.

burstguard's local cluster has no registry and pulls nothing, so every image its real node runs
is written here and imported into the runtime (``ctr images import``): the small test images
of ``devcluster.localimages`` and burstguard's own image (``deploy/image/build.py``, ``make
image``). No daemon and no image tool: an oci-archive is a tar of an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/...``), which ``ctr images import``, ``kind load
image-archive``, ``skopeo copy oci-archive:`` and ``podman load`` all read.

The writer streams: a file entry may name a ``source`` path that is read while the layer is
written, each layer goes to a temporary file next to the archive while its digests are
computed, and the archive is then assembled from those files. Memory stays a few MiB whatever
the image's size (burstguard's root filesystem is ~200 MiB).

The same inputs give the same bytes, hence the same digest, on any machine. That makes a
build cache keyed on the digest trustworthy and lets a test assert that nothing changed.
Determinism comes from:

- entries sorted by path, parents before children, each parent directory made explicit;
- every mtime ``SOURCE_DATE_EPOCH`` (default 0), owner root unless an entry says otherwise, no
  user or group names; POSIX tar headers, with a PAX record only for what does not fit one
  (long paths), and none for times;
- a file with several hard links inside one layer is stored once and linked after;
- gzip, when asked for, with header mtime 0 and no file name (``compression="gzip"``; the
  small test images stay uncompressed: gzip output depends on the zlib build, and a node
  unpacks an uncompressed layer faster);
- JSON with sorted keys and no whitespace, and no creation time in the config.

``index.json`` names the image twice: ``org.opencontainers.image.ref.name`` (the tag, as the
spec says) and ``io.containerd.image.name`` (the full reference containerd imports it as).
Names must be fully qualified (``localhost/burstguard/pause:3.10``): containerd rewrites a
short name to ``docker.io/...``, and an image missing under that name is pulled from the
internet; under ``localhost/`` a pull attempt could only reach this machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final, Literal, Protocol

MEDIA_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX: Final = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"

ANNOTATION_REF: Final = "org.opencontainers.image.ref.name"
"""The tag part of the name (OCI image layout spec)."""
ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"
"""The full reference ``ctr images import`` registers the image under."""

DEFAULT_EPOCH: Final = 0
"""mtime of every entry, seconds since 1970, unless ``SOURCE_DATE_EPOCH`` is given."""
GZIP_LEVEL: Final = 6
"""zlib level of gzip layers (part of the digest: changing it changes every gzip image)."""

Compression = Literal["none", "gzip"]


class ImageError(ValueError):
    """A file list or configuration that cannot become an image; the message says which entry."""


@dataclass(frozen=True)
class Entry:
    """One file, directory or symlink of a layer."""

    path: str
    """Path inside the image, relative or absolute (``bin/pause`` == ``/bin/pause``)."""
    data: bytes | None = None
    """File content; None for a directory, a symlink or a file read from ``source``."""
    mode: int = 0o644
    """Permission bits (``0o755`` for executables)."""
    link: str | None = None
    """Symlink target; when set, this entry is a symlink."""
    source: Path | None = None
    """A file on this machine whose content is streamed in when the layer is written."""
    owner: tuple[int, int] = (0, 0)
    """(uid, gid) in the image."""

    @property
    def is_dir(self) -> bool:
        """A directory: no content and no link target."""
        return self.data is None and self.link is None and self.source is None

    def clean_path(self) -> str:
        """The path without leading ``/`` or ``./``, ``..`` refused."""
        parts = PurePosixPath("/", self.path).parts[1:]
        if not parts or ".." in parts:
            raise ImageError(f"bad path in image: {self.path!r}")
        return "/".join(parts)


@dataclass(frozen=True)
class Layer:
    """One layer: a set of entries (two different entries for one path are an error)."""

    entries: tuple[Entry, ...]
    """The files; order does not matter, the tar is sorted."""

    @staticmethod
    def of(entries: Iterable[Entry]) -> Layer:
        """A layer of these entries."""
        return Layer(tuple(entries))

    @staticmethod
    def from_directory(
        root: Path, prefix: str = "", owners: Mapping[str, tuple[int, int]] | None = None
    ) -> Layer:
        """Every file, directory and symlink under ``root``, placed under ``prefix``.

        Permission bits are kept (executables stay executable); times are not, and owners
        are root unless ``owners`` maps a relative path to (uid, gid) for it and everything
        under it. Files are referenced, not read: their content is streamed when the layer
        is written. Special files (devices, sockets, fifos) are refused: an image carries none.
        """
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            base = Path(dirpath)
            for name in [*dirnames, *filenames]:
                path = base / name
                rel_root = path.relative_to(root).as_posix()
                rel = str(PurePosixPath(prefix, rel_root))
                owner = _owner(rel_root, owners or {})
                st = path.lstat()
                perm = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    entries.append(Entry(rel, link=os.readlink(path), mode=0o777, owner=owner))
                elif stat.S_ISDIR(st.st_mode):
                    entries.append(Entry(rel, mode=perm, owner=owner))
                elif stat.S_ISREG(st.st_mode):
                    entries.append(Entry(rel, source=path, mode=perm, owner=owner))
                else:
                    raise ImageError(f"{path}: not a regular file, directory or symlink")
        return Layer(tuple(entries))


def _owner(rel: str, owners: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    for prefix, ids in owners.items():
        if rel == prefix or rel.startswith(prefix + "/"):
            return ids
    return (0, 0)


@dataclass(frozen=True)
class Config:
    """What the image runs (the ``config`` object of the OCI image configuration)."""

    entrypoint: Sequence[str] = ()
    """Entrypoint argv."""
    cmd: Sequence[str] = ()
    """Default arguments."""
    env: Sequence[str] = ("PATH=/bin",)
    """``NAME=value`` pairs."""
    workdir: str = "/"
    """Working directory."""
    user: str = "0:0"
    """``uid:gid`` the process runs as."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Image labels."""


@dataclass(frozen=True)
class Written:
    """The result of ``write``."""

    path: Path
    """The archive file."""
    name: str
    """The full image reference it holds."""
    digest: str
    """``sha256:...`` of the manifest: the image's identity (what ``ctr images ls`` shows)."""
    size: int
    """Archive size, bytes."""
    config_digest: str = ""
    """``sha256:...`` of the image configuration."""
    diff_ids: tuple[str, ...] = ()
    """``sha256:...`` of each layer's uncompressed tar."""
    uncompressed_bytes: int = 0
    """Sum of the layers' uncompressed tar sizes, bytes (what a node unpacks)."""


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: _Sink | None = None) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, b: Any) -> int:
        """Hash, count and pass on ``b``."""
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        """``sha256:`` of everything written."""
        return "sha256:" + self.sha.hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _info(name: str, epoch: int, entry: Entry, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    info.mode = entry.mode
    info.uid, info.gid = entry.owner
    info.uname = info.gname = ""
    info.type = kind
    info.size = size
    return info


def _sorted_entries(layer: Layer) -> Iterator[tuple[str, Entry]]:
    """(clean path, entry) in tar order; implied parents become directories."""
    by_path: dict[str, Entry] = {}
    for entry in layer.entries:
        path = entry.clean_path()
        if path in by_path and by_path[path] != entry:
            raise ImageError(f"two different entries for {path!r} in one layer")
        by_path[path] = entry
    for path in list(by_path):
        parent = PurePosixPath(path).parent
        while str(parent) != ".":
            existing = by_path.get(str(parent))
            if existing is not None and not existing.is_dir:
                raise ImageError(f"{path!r} needs {str(parent)!r} to be a directory")
            by_path.setdefault(str(parent), Entry(str(parent), mode=0o755))
            parent = parent.parent
    for path in sorted(by_path, key=os.fsencode):
        yield path, by_path[path]


def write_layer(layer: Layer, dest: IO[bytes], epoch: int = DEFAULT_EPOCH) -> None:
    """Stream the layer's deterministic tar into ``dest``.

    A ``source`` file with several links, met again in this layer, becomes a hard link to
    its first path instead of a second copy.
    """
    linked: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=dest, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, entry in _sorted_entries(layer):
            if entry.link is not None:
                info = _info(path, epoch, entry, tarfile.SYMTYPE)
                info.mode = 0o777  # a symlink's own mode means nothing; ls shows lrwxrwxrwx
                info.linkname = entry.link
                tar.addfile(info)
            elif entry.source is not None:
                _add_source(tar, path, entry, epoch, linked)
            elif entry.data is not None:
                info = _info(path, epoch, entry, tarfile.REGTYPE, len(entry.data))
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(_info(path, epoch, entry, tarfile.DIRTYPE))


def _add_source(
    tar: tarfile.TarFile,
    path: str,
    entry: Entry,
    epoch: int,
    linked: dict[tuple[int, int], str],
) -> None:
    assert entry.source is not None
    with entry.source.open("rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{entry.source}: not a regular file")
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in linked:
            info = _info(path, epoch, entry, tarfile.LNKTYPE)
            info.linkname = linked[key]
            tar.addfile(info)
            return
        linked[key] = path
        tar.addfile(_info(path, epoch, entry, tarfile.REGTYPE, st.st_size), f)


def layer_tar(layer: Layer, epoch: int = DEFAULT_EPOCH) -> bytes:
    """The layer's tar as bytes (small layers and tests; :func:`write` streams)."""
    out = io.BytesIO()
    write_layer(layer, out, epoch)
    return out.getvalue()


def check_name(name: str) -> str:
    """The tag of a fully qualified image name; :class:`ImageError` for any other name."""
    last = name.rsplit("/", 1)[-1]
    if ":" not in last or "@" in name:
        raise ImageError(f"image name {name!r} needs an explicit tag (and no digest)")
    host = name.split("/", 1)[0]
    if "/" not in name or ("." not in host and ":" not in host and host != "localhost"):
        raise ImageError(
            f"image name {name!r} is not fully qualified: containerd would look for "
            "docker.io/... and try to pull it (use localhost/<path>:<tag>)"
        )
    return last.rsplit(":", 1)[1]


@dataclass(frozen=True)
class _Blob:
    digest: str
    size: int
    path: Path


def _layer_blob(
    layer: Layer, work: Path, index: int, epoch: int, compression: Compression
) -> tuple[_Blob, str, int]:
    """Write one layer blob under ``work``; returns it, its diff_id and its tar's size."""
    path = work / f"layer-{index}"
    with path.open("wb") as raw:
        stored = _Hashing(raw)
        if compression == "gzip":
            with gzip.GzipFile(
                filename="", fileobj=stored, mode="wb", mtime=0, compresslevel=GZIP_LEVEL
            ) as gz:
                plain = _Hashing(gz)
                write_layer(layer, plain, epoch)  # type: ignore[arg-type]
        else:
            plain = _Hashing(stored)
            write_layer(layer, plain, epoch)  # type: ignore[arg-type]
    return _Blob(stored.digest, stored.size, path), plain.digest, plain.size


def _bytes_blob(data: bytes, work: Path, stem: str) -> _Blob:
    path = work / stem
    path.write_bytes(data)
    return _Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), path)


def _image_config(config: Config, diff_ids: Sequence[str]) -> bytes:
    runtime = {
        "Entrypoint": list(config.entrypoint) or None,
        "Cmd": list(config.cmd) or None,
        "Env": list(config.env),
        "WorkingDir": config.workdir,
        "User": config.user,
        "Labels": dict(config.labels) or None,
    }
    return _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {k: v for k, v in runtime.items() if v is not None},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        }
    )


def write(
    path: Path,
    name: str,
    layers: Sequence[Layer],
    config: Config,
    *,
    epoch: int | None = None,
    compression: Compression = "none",
) -> Written:
    """Write the image as an ``oci-archive`` tar at ``path`` (atomically) and describe it.

    ``epoch`` defaults to ``$SOURCE_DATE_EPOCH`` or 0. Temporary layer files go next to
    ``path`` (as large as the layers) and are removed.
    """
    tag = check_name(name)
    when = epoch if epoch is not None else int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    path.parent.mkdir(parents=True, exist_ok=True)
    media = MEDIA_LAYER_GZIP if compression == "gzip" else MEDIA_LAYER
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        work = Path(tmp)
        blobs: list[_Blob] = []
        diff_ids = []
        uncompressed = 0
        for i, layer in enumerate(layers):
            blob, diff_id, size = _layer_blob(layer, work, i, when, compression)
            blobs.append(blob)
            diff_ids.append(diff_id)
            uncompressed += size
        config_blob = _bytes_blob(_image_config(config, diff_ids), work, "config")
        manifest = _json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {
                    "mediaType": MEDIA_CONFIG,
                    "digest": config_blob.digest,
                    "size": config_blob.size,
                },
                "layers": [{"mediaType": media, "digest": b.digest, "size": b.size} for b in blobs],
            }
        )
        manifest_blob = _bytes_blob(manifest, work, "manifest")
        index = _json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_INDEX,
                "manifests": [
                    {
                        "mediaType": MEDIA_MANIFEST,
                        "digest": manifest_blob.digest,
                        "size": manifest_blob.size,
                        "platform": {"architecture": "amd64", "os": "linux"},
                        "annotations": {ANNOTATION_REF: tag, ANNOTATION_CONTAINERD_NAME: name},
                    }
                ],
            }
        )
        layout = Layer.of(
            [
                Entry("oci-layout", data=_json({"imageLayoutVersion": "1.0.0"})),
                Entry("index.json", data=index),
                *(
                    Entry(f"blobs/sha256/{b.digest.removeprefix('sha256:')}", source=b.path)
                    for b in [*blobs, config_blob, manifest_blob]
                ),
            ]
        )
        part = work / "archive"
        with part.open("wb") as f:
            write_layer(layout, f, when)
        part.replace(path)
    return Written(
        path,
        name,
        manifest_blob.digest,
        path.stat().st_size,
        config_digest=config_blob.digest,
        diff_ids=tuple(diff_ids),
        uncompressed_bytes=uncompressed,
    )


def read_config(archive: Path) -> dict[str, Any]:
    """The image config of a one-image archive, with its ``index.json`` as ``_index``
    (for checks and tests)."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> Any:
            f = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            if f is None:
                raise ImageError(f"{archive}: blob {digest} missing")
            return json.load(f)

        f = tar.extractfile("index.json")
        if f is None:
            raise ImageError(f"{archive}: no index.json")
        index = json.load(f)
        manifest = blob(index["manifests"][0]["digest"])
        config: dict[str, Any] = blob(manifest["config"]["digest"])
        config["_index"] = index
        return config
