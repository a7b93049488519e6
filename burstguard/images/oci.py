"""A deterministic OCI image writer: a list of files in, an ``oci-archive`` tar out.

burstguard's local cluster has no registry and pulls nothing, so every image its real node runs
is written here and imported into the runtime (``ctr images import``). The writer is pure
Python and deterministic: the same files, config and name give the same bytes, hence the same
digest, on any machine. That is what makes a build cache keyed on the digest trustworthy and
lets a test assert that nothing changed. Determinism comes from:

- one layer per ``Layer``, an *uncompressed* tar (media type ``...layer.v1.tar``): gzip output
  depends on the zlib build, and a node unpacks an uncompressed layer faster anyway;
- entries sorted by path, parents before children, each parent directory made explicit;
- every mtime ``SOURCE_DATE_EPOCH`` (default 0), uid/gid 0, no user or group names, PAX-free
  USTAR headers;
- JSON with sorted keys and no whitespace, and no creation time in the config.

The archive is an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) in a
tar. ``index.json`` names the image twice: ``org.opencontainers.image.ref.name`` (the tag, as the
spec says) and ``io.containerd.image.name`` (the full reference containerd imports it as).
Names should be fully qualified (``localhost/burstguard/pause:3.10``): containerd rewrites a
short name to ``docker.io/...``, and an image missing under that name is pulled from the
internet; under ``localhost/`` a pull attempt could only reach this machine.

The ``image`` build of burstguard itself reuses this module: build ``Layer`` objects from a root
directory (``Layer.from_directory``) or from explicit ``Entry`` lists, and call ``write``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

MEDIA_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX: Final = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"

ANNOTATION_REF: Final = "org.opencontainers.image.ref.name"
"""The tag part of the name (OCI image layout spec)."""
ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"
"""The full reference ``ctr images import`` registers the image under."""

DEFAULT_EPOCH: Final = 0
"""mtime of every entry, seconds since 1970, unless ``SOURCE_DATE_EPOCH`` is given."""


class ImageError(ValueError):
    """A file list or configuration that cannot become an image; the message says which entry."""


@dataclass(frozen=True)
class Entry:
    """One file, directory or symlink of a layer."""

    path: str
    """Path inside the image, relative or absolute (``bin/pause`` == ``/bin/pause``)."""
    data: bytes | None = None
    """File content; None for a directory or a symlink."""
    mode: int = 0o644
    """Permission bits (``0o755`` for executables)."""
    link: str | None = None
    """Symlink target; when set, this entry is a symlink."""

    @property
    def is_dir(self) -> bool:
        """A directory: no data and no link target."""
        return self.data is None and self.link is None

    def clean_path(self) -> str:
        """The path without leading ``/`` or ``./``, ``..`` refused."""
        parts = PurePosixPath("/", self.path).parts[1:]
        if not parts or ".." in parts:
            raise ImageError(f"bad path in image: {self.path!r}")
        return "/".join(parts)


@dataclass(frozen=True)
class Layer:
    """One layer: a set of entries (duplicates by path are an error)."""

    entries: tuple[Entry, ...]
    """The files; order does not matter, the tar is sorted."""

    @staticmethod
    def of(entries: Iterable[Entry]) -> Layer:
        """A layer of these entries."""
        return Layer(tuple(entries))

    @staticmethod
    def from_directory(root: Path, prefix: str = "") -> Layer:
        """Every file, directory and symlink under ``root``, placed under ``prefix`` in the image.

        Permission bits are kept (executables stay executable); owners and times are not.
        Special files (devices, sockets, fifos) are refused: an image carries none.
        """
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            for name in [*dirnames, *sorted(filenames)]:
                path = base / name
                rel = str(PurePosixPath(prefix, path.relative_to(root).as_posix()))
                st = path.lstat()
                perm = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    entries.append(Entry(rel, link=os.readlink(path), mode=0o777))
                elif stat.S_ISDIR(st.st_mode):
                    entries.append(Entry(rel, mode=perm))
                elif stat.S_ISREG(st.st_mode):
                    entries.append(Entry(rel, data=path.read_bytes(), mode=perm))
                else:
                    raise ImageError(f"{path}: not a regular file, directory or symlink")
        return Layer(tuple(entries))


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


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _info(name: str, epoch: int, mode: int, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = kind
    info.size = size
    return info


def layer_tar(layer: Layer, epoch: int = DEFAULT_EPOCH) -> bytes:
    """The layer as deterministic tar bytes (parents implied by a path become directories)."""
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
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            if entry.link is not None:
                info = _info(path, epoch, 0o777, tarfile.SYMTYPE)
                info.linkname = entry.link
                tar.addfile(info)
            elif entry.data is None:
                tar.addfile(_info(path + "/", epoch, entry.mode, tarfile.DIRTYPE))
            else:
                info = _info(path, epoch, entry.mode, tarfile.REGTYPE, len(entry.data))
                tar.addfile(info, io.BytesIO(entry.data))
    return out.getvalue()


def _tag(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    if ":" not in last or "@" in name:
        raise ImageError(f"image name {name!r} needs an explicit tag (and no digest)")
    return last.rsplit(":", 1)[1]


def blobs(
    name: str, layers: Sequence[Layer], config: Config, *, epoch: int = DEFAULT_EPOCH
) -> tuple[dict[str, bytes], bytes]:
    """Every blob by digest, and ``index.json``; the pure core of ``write``."""
    tag = _tag(name)
    host = name.split("/", 1)[0]
    if "/" not in name or ("." not in host and ":" not in host and host != "localhost"):
        raise ImageError(
            f"image name {name!r} is not fully qualified: containerd would look for "
            "docker.io/... and try to pull it (use localhost/<path>:<tag>)"
        )
    store: dict[str, bytes] = {}
    layer_descs = []
    diff_ids = []
    for layer in layers:
        data = layer_tar(layer, epoch)
        digest = _sha256(data)
        store[digest] = data
        diff_ids.append(digest)
        layer_descs.append({"mediaType": MEDIA_LAYER, "digest": digest, "size": len(data)})
    image_config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(config.entrypoint) or None,
            "Cmd": list(config.cmd) or None,
            "Env": list(config.env),
            "WorkingDir": config.workdir,
            "User": config.user,
            "Labels": dict(config.labels) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    image_config["config"] = {k: v for k, v in image_config["config"].items() if v is not None}
    config_bytes = _json(image_config)
    config_digest = _sha256(config_bytes)
    store[config_digest] = config_bytes
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {
                "mediaType": MEDIA_CONFIG,
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": layer_descs,
        }
    )
    manifest_digest = _sha256(manifest)
    store[manifest_digest] = manifest
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {ANNOTATION_REF: tag, ANNOTATION_CONTAINERD_NAME: name},
                }
            ],
        }
    )
    return store, index


def manifest_digest(index: bytes) -> str:
    """The digest of the (single) manifest an ``index.json`` lists."""
    return str(json.loads(index)["manifests"][0]["digest"])


def _layout_tar(store: Mapping[str, bytes], index: bytes, epoch: int) -> bytes:
    files = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": b for d, b in store.items()},
    }
    return layer_tar(Layer.of(Entry(path, data=data) for path, data in files.items()), epoch)


def archive(
    name: str, layers: Sequence[Layer], config: Config, *, epoch: int = DEFAULT_EPOCH
) -> tuple[bytes, str]:
    """The ``oci-archive`` tar bytes of one image and its manifest digest."""
    store, index = blobs(name, layers, config, epoch=epoch)
    return _layout_tar(store, index, epoch), manifest_digest(index)


def write(
    path: Path,
    name: str,
    layers: Sequence[Layer],
    config: Config,
    *,
    epoch: int | None = None,
) -> Written:
    """Write the image as an ``oci-archive`` tar at ``path`` (atomically) and describe it.

    ``epoch`` defaults to ``$SOURCE_DATE_EPOCH`` or 0.
    """
    when = epoch if epoch is not None else int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    data, digest = archive(name, layers, config, epoch=when)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return Written(path, name, digest, len(data))
