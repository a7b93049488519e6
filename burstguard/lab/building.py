"""Building the incident-lab guest from Debian packages, cached per kernel release.

The guest is a node with a kernel that still has the global ``shrinker_rwsem`` (Debian's 6.1
cloud kernel), booted by qemu without installing anything on the host: the kernel package is
fetched with ``apt-get download`` and unpacked with ``dpkg -x``. Its uncompressed ``vmlinux``
is cut out of ``vmlinuz`` (LZ4) because qemu boots it directly through its PVH entry note,
skipping the decompressor (the slowest part of an emulated boot). The root file system is a
busybox initramfs with the static C workload; Python and burstguard for the guarded scenario
come on a separate read-only ext4 "tools" disk, so a code change rebuilds only that disk.

Everything lands in ``~/.cache/burstguard/lab/<kernel release>/``; each artifact records a
hash of its inputs and is rebuilt only when they change.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import burstguard

KERNEL_PACKAGE: Final = "linux-image-6.1.0-57-cloud-amd64"
"""The pinned guest kernel: Debian 12's 6.1 cloud kernel, before 6.7 (with shrinker_rwsem).
Pinned rather than taken from the ``linux-image-cloud-amd64`` metapackage, whose target moves
with every security update (6.1.0-56 and 6.1.0-57 gave different lab results)."""
KERNEL_VERSION: Final = "6.1.192-3"
"""Debian version of :data:`KERNEL_PACKAGE` (``apt-cache madison`` lists what is served)."""
KERNEL_ENV: Final = "BURSTGUARD_LAB_KERNEL"
"""``PACKAGE=VERSION`` of another 6.1 kernel to use when the pinned one is no longer served;
the report then says the kernel was not the pinned one."""
KERNEL_SERIES: Final = "6.1."
"""Kernel series the lab needs: before 6.7, with shrinker_rwsem (bookworm ships 6.1)."""
BUSYBOX_PACKAGE: Final = "busybox-static"
"""Debian package with a static busybox for the initramfs."""
GUEST_MODULES: Final = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_blk",
    "overlay",
)
"""Modules the guest insmods, in dependency order (the cloud kernel builds them as modules)."""
LZ4_LEGACY_MAGIC: Final = b"\x02\x21\x4c\x18"
"""Magic of the LZ4 legacy frame that holds vmlinux inside the Debian vmlinuz."""
PYTHON_SKIP: Final = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "dist-packages",
        "site-packages",
        "config-3.11-x86_64-linux-gnu",
        "venv",
    }
)
"""Parts of the standard library the guest never needs (keeps the tools disk ~30 MB)."""
GUEST_PYTHON: Final = "/usr/bin/python3.11"
"""Host interpreter copied to the tools disk (Debian's python3.11, dynamically linked)."""


class BuildError(RuntimeError):
    """The guest cannot be built on this machine; the message says what is missing."""


@dataclass(frozen=True)
class Guest:
    """Paths of a built guest."""

    release: str
    """Kernel release, e.g. ``6.1.0-56-cloud-amd64``."""
    package_version: str
    """Debian version of the kernel package, e.g. ``6.1.192-3``."""
    package: str
    """Debian kernel package, e.g. ``linux-image-6.1.0-57-cloud-amd64``."""
    pinned: bool
    """True when package and version are the pinned :data:`KERNEL_PACKAGE` /
    :data:`KERNEL_VERSION`; False when :data:`KERNEL_ENV` chose another."""
    vmlinux: Path
    """Uncompressed kernel with the PVH entry note."""
    initramfs: Path
    """gzip'ed newc cpio: busybox, labload, /init, modules."""
    tools: Path | None
    """Read-only ext4 image with Python and burstguard, or None when not built."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/burstguard/lab`` (default ``~/.cache/burstguard/lab``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "burstguard" / "lab"


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{cmd[0]} not found: install it (see .ci/apt-packages.txt)") from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{' '.join(cmd)} failed: {exc.stderr.strip()[-800:]}") from exc
    return done.stdout


def _progress(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def kernel_choice(environ: dict[str, str] | None = None) -> tuple[str, str, bool]:
    """(package, version, pinned): the pinned kernel, or :data:`KERNEL_ENV`'s choice."""
    override = (environ if environ is not None else dict(os.environ)).get(KERNEL_ENV, "")
    if not override:
        return KERNEL_PACKAGE, KERNEL_VERSION, True
    package, sep, version = override.partition("=")
    if not sep or not re.fullmatch(r"linux-image-\d[\w.+-]*-cloud-amd64", package) or not version:
        raise BuildError(
            f"{KERNEL_ENV}={override!r}: expected PACKAGE=VERSION, e.g. "
            f"{KERNEL_PACKAGE}={KERNEL_VERSION}"
        )
    if not package.removeprefix("linux-image-").startswith(KERNEL_SERIES):
        raise BuildError(f"{KERNEL_ENV}: {package} is not a {KERNEL_SERIES}x kernel")
    return package, version, (package, version) == (KERNEL_PACKAGE, KERNEL_VERSION)


def served_versions(package: str) -> list[str]:
    """Versions of ``package`` that apt can download now (``apt-cache madison``)."""
    out = _run(["apt-cache", "madison", package])
    return [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2]


def _fetch_deb(package: str, into: Path, version: str | None = None) -> Path:
    """The cached ``.deb`` of ``package`` (at ``version`` when given), downloaded if absent."""
    into.mkdir(parents=True, exist_ok=True)
    pattern = f"{package}_{version.replace(':', '%3a')}_*.deb" if version else f"{package}_*.deb"
    debs = sorted(into.glob(pattern))
    if not debs:
        wanted = f"{package}={version}" if version else package
        _progress(f"apt-get download {wanted}")
        _run(["apt-get", "download", "-q", wanted], cwd=into)
        debs = sorted(into.glob(pattern))
    if not debs:
        raise BuildError(f"apt-get download {package} produced no .deb")
    return debs[-1]


def _fetch_kernel(package: str, version: str, into: Path) -> Path:
    """The kernel ``.deb`` at exactly ``version``; a clear error when apt no longer serves it."""
    if not sorted(into.glob(f"{package}_{version}_*.deb")):
        served = served_versions(package)
        if version not in served:
            raise BuildError(
                f"the pinned guest kernel {package}={version} is not served by apt "
                f"(served: {', '.join(served) or 'none'}; run apt-get update first). Choose "
                f"another 6.1 kernel with {KERNEL_ENV}=PACKAGE=VERSION: the report will say "
                "it is not the pinned one"
            )
    return _fetch_deb(package, into, version)


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _fresh(path: Path, key: str) -> bool:
    stamp = path.with_name(path.name + ".key")
    return path.exists() and stamp.exists() and stamp.read_text() == key


def _stamp(path: Path, key: str) -> None:
    path.with_name(path.name + ".key").write_text(key)


def guest_source(name: str) -> bytes:
    """A file shipped in ``burstguard/lab/guest/`` (package data)."""
    return resources.files("burstguard.lab").joinpath("guest", name).read_bytes()


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """Cut the LZ4-compressed vmlinux out of a Debian x86 bzImage."""
    at = vmlinuz.find(LZ4_LEGACY_MAGIC)
    if at < 0:
        raise BuildError("vmlinuz has no LZ4 payload; this kernel is packed differently")
    try:
        done = subprocess.run(["lz4", "-dc"], input=vmlinuz[at:], capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError("lz4 not found: apt-get install lz4") from exc
    # lz4 complains about the bzImage trailer after the frame; the ELF before it is whole.
    if not done.stdout.startswith(b"\x7fELF"):
        raise BuildError(f"lz4 did not yield an ELF vmlinux: {done.stderr[-300:]!r}")
    return done.stdout


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (path, mode, data) entries; directories have empty data."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        raw = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def _build_initramfs(dest: Path, busybox: Path, labload: Path, modules: dict[str, Path]) -> None:
    dirs = ["bin", "sbin", "dev", "proc", "sys", "run", "tmp", "mnt", "lib", "lib/modules"]
    entries: list[tuple[str, int, bytes]] = [(d, 0o40755, b"") for d in dirs]
    entries.append(("dev/console", 0o20600, b""))  # char device; major/minor set below
    entries += [
        ("init", 0o100755, guest_source("init")),
        ("bin/busybox", 0o100755, busybox.read_bytes()),
        ("bin/sh", 0o120777, b"busybox"),
        ("bin/labload", 0o100755, labload.read_bytes()),
    ]
    entries += [(f"lib/modules/{m}.ko", 0o100644, p.read_bytes()) for m, p in modules.items()]
    archive = bytearray(_cpio_newc(entries))
    # dev/console needs rdev 5:1: patch the rdevmajor/rdevminor fields of its header.
    hdr = archive.find(b"dev/console\0") - 110
    archive[hdr + 6 + 8 * 9 : hdr + 6 + 8 * 11] = b"%08X%08X" % (5, 1)
    dest.write_bytes(gzip.compress(bytes(archive), compresslevel=6))


def _ldd(paths: Iterable[Path]) -> set[Path]:
    libs: set[Path] = set()
    for p in paths:
        out = subprocess.run(["ldd", str(p)], capture_output=True, text=True, check=False)
        for m in re.finditer(r"(/\S+\.so[\w.]*)", out.stdout):
            libs.add(Path(m.group(1)))
    return libs


def _copy_python_tree(src: Path, dst: Path) -> None:
    def ignore(d: str, names: list[str]) -> set[str]:
        return {n for n in names if n in PYTHON_SKIP and Path(d) == src}

    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


def _package_dir() -> Path:
    return Path(burstguard.__file__).parent


def _package_sources() -> list[Path]:
    root = _package_dir()
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


GUEST_ENTRY: Final = "burstguard.lab.guarding"
"""The module the guest runs; its third-party imports go onto the tools disk."""

_LIST_IMPORTS: Final = """
import sys, sysconfig
import importlib
importlib.import_module(sys.argv[1])
stdlib = sysconfig.get_paths()["stdlib"]
for name, mod in sorted(sys.modules.items()):
    f = getattr(mod, "__file__", None)
    if "." in name or name.startswith("_") or not f or f.startswith(stdlib):
        continue
    if name == "burstguard":
        continue
    print(f)
"""


def third_party_modules() -> list[Path]:
    """Top-level packages (dirs) or modules (files) outside the stdlib that the guest's
    entry module imports, found by importing it in this interpreter (the agent needs the
    kubernetes client and prometheus_client even when it talks to no API server)."""
    out = _run([sys.executable, "-c", _LIST_IMPORTS, GUEST_ENTRY])
    found: list[Path] = []
    for line in out.splitlines():
        f = Path(line.strip())
        found.append(f.parent if f.name == "__init__.py" else f)
    return found


def _build_tools(dest: Path, work: Path) -> None:
    """Read-only ext4 with Debian's python3.11 and this checkout's burstguard package."""
    python = Path(GUEST_PYTHON)
    if not python.exists():
        raise BuildError(f"{python} not found: apt-get install python3 (guarded scenarios)")
    stdlib = Path("/usr/lib/python3.11")
    root = work / "tools-root"
    shutil.rmtree(root, ignore_errors=True)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(python, root / "usr/bin/python3.11")
    _copy_python_tree(stdlib, root / "usr/lib/python3.11")
    pkg = _package_dir()
    for src in _package_sources():
        rel = src.relative_to(pkg.parent)
        (root / "app" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, root / "app" / rel)
    for dep in third_party_modules():
        target = root / "app" / dep.name
        if dep.is_dir():
            shutil.copytree(dep, target, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy2(dep, target)
    # shared libraries of the interpreter, its extension modules and the copied packages'
    # (pydantic_core needs libgcc_s, which the busybox guest does not have)
    extensions = [*(stdlib / "lib-dynload").glob("*.so"), *(root / "app").rglob("*.so")]
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "lib64").mkdir()
    for lib in _ldd([python, *extensions]):
        real = lib.resolve()
        if lib.name.startswith("ld-linux"):
            shutil.copy2(real, root / "lib64" / lib.name)
        else:
            shutil.copy2(real, libdir / lib.name)
    # byte-compile with the guest's own interpreter: imports under emulation are slow enough
    _run([str(python), "-m", "compileall", "-q", str(root / "app")])
    tmp = dest.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    size_mb = used * 3 // 2 // (1 << 20) + 64  # ext4 metadata and small-file slack
    _run(["mke2fs", "-q", "-t", "ext4", "-L", "tools", "-d", str(root), str(tmp), f"{size_mb}M"])
    tmp.replace(dest)
    shutil.rmtree(root, ignore_errors=True)


def build(*, with_tools: bool, root: Path | None = None) -> Guest:
    """Build (or reuse) the guest; ``with_tools`` adds the Python tools disk."""
    for tool in ("apt-get", "apt-cache", "dpkg", "gcc", "mke2fs", "lz4"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found: the lab needs it (see .ci/apt-packages.txt)")
    package, version, pinned = kernel_choice()
    release = package.removeprefix("linux-image-")
    cache = (root or cache_root()) / release
    cache.mkdir(parents=True, exist_ok=True)

    deb = _fetch_kernel(package, version, cache / "debs")
    kpkg = cache / "kpkg"
    if not (kpkg / "boot" / f"vmlinuz-{release}").exists():
        _progress(f"unpacking {deb.name}")
        shutil.rmtree(kpkg, ignore_errors=True)
        _run(["dpkg", "-x", str(deb), str(kpkg)])
    vmlinux = cache / "vmlinux"
    if not vmlinux.exists():
        _progress("extracting vmlinux (PVH boot)")
        data = extract_vmlinux((kpkg / "boot" / f"vmlinuz-{release}").read_bytes())
        vmlinux.with_suffix(".tmp").write_bytes(data)
        vmlinux.with_suffix(".tmp").replace(vmlinux)
    modules: dict[str, Path] = {}
    for m in GUEST_MODULES:
        found = list((kpkg / "lib" / "modules" / release).rglob(f"{m}.ko"))
        if not found:
            raise BuildError(f"module {m}.ko not in {package}")
        modules[m] = found[0]

    bb_deb = _fetch_deb(BUSYBOX_PACKAGE, cache / "debs")
    busybox = cache / "busybox" / "bin" / "busybox"
    if not busybox.exists():
        _run(["dpkg", "-x", str(bb_deb), str(cache / "busybox")])

    source = guest_source("labload.c")
    labload = cache / "labload"
    if not _fresh(labload, _digest([source])):
        _progress("compiling labload (gcc -static)")
        (cache / "labload.c").write_bytes(source)
        _run(["gcc", "-O2", "-static", "-o", str(labload), str(cache / "labload.c")])
        _stamp(labload, _digest([source]))

    initramfs = cache / "initramfs.cpio.gz"
    key = _digest([guest_source("init"), labload.read_bytes(), release.encode()])
    if not _fresh(initramfs, key):
        _progress("packing initramfs")
        _build_initramfs(initramfs, busybox, labload, modules)
        _stamp(initramfs, key)

    tools: Path | None = None
    if with_tools:
        tools = cache / "tools.img"
        key = _digest([p.read_bytes() for p in _package_sources()] + [GUEST_PYTHON.encode()])
        if not _fresh(tools, key):
            _progress("building tools disk (python3.11 + burstguard)")
            _build_tools(tools, cache)
            _stamp(tools, key)
    return Guest(release, version, package, pinned, vmlinux, initramfs, tools)


def main() -> int:
    """``python -m burstguard.lab.building``: fetch and build the guest (CI setup, before the
    venv exists; the tools disk needs the venv's packages and is built by the first lab run)."""
    try:
        guest = build(with_tools=False)
    except BuildError as exc:
        print(f"lab: cannot build the guest: {exc}", file=sys.stderr)
        return 4
    pin = "pinned" if guest.pinned else f"NOT the pinned {KERNEL_PACKAGE}={KERNEL_VERSION}"
    print(
        f"lab: guest {guest.package}={guest.package_version} ({pin}) ready in "
        f"{guest.vmlinux.parent}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
