"""`make image`: the burstguard container image from Debian packages and this project's wheel.

No Docker daemon, no buildah: the root filesystem is assembled from bookworm .debs
(``dpkg-deb -x``, no maintainer scripts: nothing here needs one), the runtime dependencies are
installed from wheels pinned in ``requirements.txt``, and ``burstguard.images.oci`` (the
project's one image writer, streaming) writes the tree as a one-layer gzip oci-archive with
every timestamp and owner fixed. Two builds of the same inputs give
the same digest. What goes in: Python 3.11, burstguard and its runtime dependencies only (no
matplotlib), bpftrace; no compiler, no package manager, no caches, no docs. Default user
65532 (``burstguard``), entrypoint ``burstguard``.

The build is skipped when ``dist/burstguard-<version>.oci.tar.stamp`` holds the hash of the
inputs: this file, the package list and its resolved Debian versions,
``requirements.txt``, ``$SOURCE_DATE_EPOCH`` and the project's source files (the writer is
one of them). Downloads are cached under
``~/.cache/burstguard/image/`` (debs, wheels). Needs root (``ldconfig -r`` chroots).

Usage: ``python deploy/image/build.py [--force] [--lock]``; ``--lock`` re-resolves
``requirements.txt`` from the project's dependencies (the newest wheels for CPython 3.11 on
manylinux x86_64) and writes it before building.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
from burstguard.images import oci  # noqa: E402

PACKAGES = HERE / "debian-packages.txt"
LOCK = HERE / "requirements.txt"
SITE = "usr/local/lib/python3.11/dist-packages"
UID, GID = 65532, 65532
PLATFORM = [
    "--only-binary=:all:",
    "--implementation=cp",
    "--python-version=3.11",
    "--abi=cp311",
    "--platform=manylinux_2_36_x86_64",  # bookworm's glibc 2.36 and every older tag
    *(f"--platform=manylinux_2_{m}_x86_64" for m in range(35, 16, -1)),
    "--platform=manylinux2014_x86_64",
    "--platform=linux_x86_64",
]
PRUNE = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
    "usr/share/bug",
    "usr/share/gdb",
    "usr/share/python3",
    "usr/lib/x86_64-linux-gnu/gconv",  # iconv modules: neither Python nor bpftrace uses iconv
    "usr/lib/python3.11/test",  # regression-test support, not a runtime module
    "var",
]
ETC = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"burstguard:x:{UID}:{GID}:burstguard:/nonexistent:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "etc/group": f"root:x:0:\nburstguard:x:{GID}:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
}
LAUNCHER = """#!/usr/bin/python3.11
# burstguard's entry point in the container image (the wheel's console script, fixed path).
import sys

from burstguard.cli.main import main

sys.exit(main())
"""


def log(msg: str) -> None:
    print(f"image: {msg}", flush=True)


def run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], check=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


# --- Debian packages ---


def package_list() -> tuple[list[str], set[str]]:
    roots: list[str] = []
    excludes: set[str] = set()
    for raw in PACKAGES.read_text().splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "exclude":
            excludes.add(words[1])
        else:
            roots.append(words[0])
    return roots, excludes


def resolve_debs() -> dict[str, str]:
    """Package -> candidate version of the roots' Depends/Pre-Depends closure, minus excludes."""
    roots, excludes = package_list()
    out = run(
        "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
        "--no-breaks", "--no-replaces", "--no-enhances", *roots, capture_output=True,
    ).stdout  # fmt: skip
    names = sorted(
        {ln.strip() for ln in out.splitlines() if ln and not ln.startswith((" ", "<"))} - excludes
    )
    shown = run("apt-cache", "show", "--no-all-versions", *names, capture_output=True).stdout.split(
        "\n\n"
    )
    versions: dict[str, str] = {}
    for block in shown:
        fields = dict(
            ln.split(": ", 1) for ln in block.splitlines() if ": " in ln and not ln[0].isspace()
        )
        if "Package" in fields:
            versions[fields["Package"]] = fields["Version"]
    missing = set(names) - set(versions)
    if missing:
        raise SystemExit(f"image: apt knows no candidate for {sorted(missing)}: apt-get update")
    return versions


def fetch_debs(versions: dict[str, str], cache: Path) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)

    def path(name: str, ver: str) -> Path | None:
        hits = sorted(cache.glob(f"{name}_{ver.replace(':', '%3a')}_*.deb"))
        return hits[0] if hits else None

    todo = [f"{n}={v}" for n, v in versions.items() if path(n, v) is None]
    if todo:
        log(f"downloading {len(todo)} Debian packages into {cache}")
        try:
            run("apt-get", "download", "-q", *todo, cwd=cache, capture_output=True)
        except subprocess.CalledProcessError:
            log("apt-get download failed; apt-get update and one retry")
            run("apt-get", "update", "-qq")
            run("apt-get", "download", "-q", *todo, cwd=cache, capture_output=True)
    debs = [path(n, v) for n, v in versions.items()]
    if any(d is None for d in debs):
        raise SystemExit("image: a Debian package did not download")
    return sorted(d for d in debs if d is not None)


# --- Python ---


def source_files() -> list[Path]:
    listed = run(
        "git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
        "burstguard", "pyproject.toml", "README.md", "LICENSE",
        cwd=REPO, capture_output=True,
    ).stdout.split()  # fmt: skip
    return sorted(REPO / p for p in set(listed) if (REPO / p).is_file())


def build_wheel(work: Path) -> Path:
    """The project's wheel, built from a copy of its listed files (no stale build/ leftovers)."""
    src = work / "src"
    for f in source_files():
        dest = src / f.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    out = work / "wheel"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, src, env=env)
    return next(out.glob("burstguard-*.whl"))


def lock(wheel: Path, work: Path) -> None:
    """Resolve the wheel's runtime dependencies for the image's Python; write requirements.txt."""
    report = work / "resolve.json"
    run(
        sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
        "--target", work / "resolve", "--report", report, *PLATFORM, wheel,
    )  # fmt: skip
    items = json.loads(report.read_text())["install"]
    pins = sorted(
        f"{m['name']}=={m['version']}"
        for m in (i["metadata"] for i in items)
        if canonicalize_name(m["name"]) != "burstguard"
    )
    LOCK.write_text(
        "# The image's Python runtime dependencies, pinned: deploy/image/build.py --lock\n"
        "# re-resolves them (CPython 3.11, manylinux x86_64 wheels only).\n"
        + "\n".join(pins)
        + "\n"
    )
    log(f"wrote {LOCK.relative_to(REPO)} ({len(pins)} pins)")


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, ver = line.split("==")
            out[canonicalize_name(name)] = ver
    return out


def check_lock(wheel_requires: list[str]) -> None:
    """Every runtime requirement of the project is pinned, at a version it accepts."""
    pinned = pins()
    bad = []
    for line in wheel_requires:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        ver = pinned.get(canonicalize_name(req.name))
        if ver is None or not req.specifier.contains(ver, prereleases=True):
            bad.append(f"{req} (pinned: {ver})")
    if bad:
        raise SystemExit(
            f"image: {LOCK.relative_to(REPO)} does not satisfy {bad}; "
            "run `python deploy/image/build.py --lock`"
        )


def project_requires() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def install_python(root: Path, wheel: Path, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    run(
        sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", cache,
        "-r", LOCK, *PLATFORM,
    )  # fmt: skip
    site = root / SITE
    run(
        sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--no-index",
        "--find-links", cache, "--target", site, *PLATFORM, "-r", LOCK, wheel,
    )  # fmt: skip
    shutil.rmtree(site / "bin", ignore_errors=True)
    for junk in site.glob("*.dist-info/direct_url.json"):
        junk.unlink()
    for f in site.glob("*.dist-info/RECORD"):  # RECORD lists bin/ and direct_url.json
        lines = [
            ln
            for ln in f.read_text().splitlines()
            if not ln.startswith(("../", "bin/")) and "direct_url.json" not in ln
        ]
        f.write_text("\n".join(lines) + "\n")
    launcher = root / "usr/local/bin/burstguard"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    (root / "usr/bin/python3").symlink_to("python3.11")


def compile_python(root: Path) -> None:
    """.pyc for the standard library and site-packages, valid without their source mtimes.

    The root filesystem is read-only in the pods, so Python could never write them itself;
    without them every start parses the Kubernetes client anew. ``unchecked-hash`` pycs hold
    no timestamp; they are compiled by the image's own interpreter in one process (-j1) with a
    fixed hash seed: with workers or a random seed the bytes of the same module differed
    between two builds.
    """
    # PYTHONHASHSEED fixes set and frozenset order in the marshalled constants (so no -I/-E,
    # which would ignore it); PYTHONDONTWRITEBYTECODE keeps the modules compileall itself
    # imports from leaving timestamp pycs behind.
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LC_ALL": "C.UTF-8",
    }
    run(
        root / "usr/bin/python3.11", "-s", "-m", "compileall", "-q", "-j1",
        "--invalidation-mode", "unchecked-hash", "-s", root, "-p", "/",
        root / "usr/lib/python3.11", root / SITE, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip


# --- the root filesystem ---


def assemble(root: Path, debs: list[Path], wheel: Path, wheels: Path, manifest: str) -> None:
    os.umask(0o022)
    for deb in debs:
        run("dpkg-deb", "-x", deb, root)
    for p in PRUNE:
        shutil.rmtree(root / p, ignore_errors=True)
    for rel, text in ETC.items():
        (root / rel).write_text(text)
    for d, mode in (("tmp", 0o1777), ("root", 0o700), ("proc", 0o755), ("sys", 0o755),
                    ("dev", 0o755), ("run", 0o755)):  # fmt: skip
        (root / d).mkdir(exist_ok=True)
        (root / d).chmod(mode)
    install_python(root, wheel, wheels)
    compile_python(root)
    info = root / "usr/share/burstguard-image"
    info.mkdir(parents=True)
    (info / "debian-packages.txt").write_text(manifest)
    shutil.copy(LOCK, info / "requirements.txt")
    run("ldconfig", "-r", root)
    for cache in root.rglob("__pycache__"):
        if not any(cache.iterdir()):
            cache.rmdir()
    forbidden = [p for p in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/pip", "var/cache/apt")
                 if (root / p).exists()]  # fmt: skip
    if forbidden:
        raise SystemExit(f"image: the root filesystem must not contain {forbidden}")


def stamp_of(versions: dict[str, str]) -> str:
    h = hashlib.sha256()
    for f in [HERE / "build.py", PACKAGES, LOCK, *source_files()]:
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(json.dumps(versions, sort_keys=True).encode())
    h.update(os.environ.get("SOURCE_DATE_EPOCH", "").encode())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--force", action="store_true", help="build even if the stamp matches")
    parser.add_argument("--lock", action="store_true", help="re-resolve requirements.txt first")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument("--cache", type=Path, default=default_cache / "burstguard" / "image")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("image: run as root (dpkg-deb ownership, ldconfig -r chroots)")
    ver = version()
    name = f"localhost/burstguard:{ver}"
    dest = args.out.resolve() / f"burstguard-{ver}.oci.tar"
    stamp_file = dest.with_name(dest.name + ".stamp")
    args.cache.mkdir(parents=True, exist_ok=True)
    versions = resolve_debs()
    if args.lock:
        with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
            lock(build_wheel(Path(tmp)), Path(tmp))
    check_lock(project_requires())
    stamp = stamp_of(versions)
    if not args.force and dest.exists() and stamp_file.exists():
        saved = json.loads(stamp_file.read_text())
        if saved.get("inputs") == stamp:
            log(f"{dest} is up to date ({name}, {saved['digest']})")
            print_summary(saved)
            return 0
    start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    debs = fetch_debs(versions, args.cache / "debs")
    manifest = "".join(f"{n} {v}\n" for n, v in sorted(versions.items()))
    with tempfile.TemporaryDirectory(dir=args.cache, prefix="build-") as tmp:
        work = Path(tmp)
        root = work / "rootfs"
        root.mkdir()
        wheel = build_wheel(work)
        log(f"assembling the root filesystem from {len(debs)} Debian packages and {wheel.name}")
        assemble(root, debs, wheel, args.cache / "wheels", manifest)
        log("writing the oci-archive")
        written = oci.write(
            dest,
            name,
            [oci.Layer.from_directory(root)],
            oci.Config(
                entrypoint=("/usr/local/bin/burstguard",),
                user=f"{UID}:{GID}",
                env=(
                    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    "LANG=C.UTF-8",
                    "PYTHONDONTWRITEBYTECODE=1",
                    "PYTHONUNBUFFERED=1",
                ),
                labels={
                    "org.opencontainers.image.title": "burstguard",
                    "org.opencontainers.image.version": ver,
                    "org.opencontainers.image.licenses": "Apache-2.0",
                },
            ),
            compression="gzip",
        )
    saved = {
        "inputs": stamp,
        "name": name,
        "archive": str(dest),
        "digest": written.digest,
        "config": written.config_digest,
        "diff_id": written.diff_ids[0],
        "uncompressed_bytes": written.uncompressed_bytes,
        "archive_bytes": written.size,
        "seconds": round(time.monotonic() - start, 1),
    }
    stamp_file.write_text(json.dumps(saved, indent=1) + "\n")
    print_summary(saved)
    return 0


def print_summary(saved: dict[str, object]) -> None:
    mib = 1 << 20
    print(f"image: {saved['name']} -> {saved['archive']}")
    print(f"image: digest {saved['digest']}")
    print(
        f"image: size {int(saved['uncompressed_bytes']) / mib:.1f} MiB uncompressed "  # type: ignore[call-overload]
        f"(goal <= 250 MiB), archive {int(saved['archive_bytes']) / mib:.1f} MiB"  # type: ignore[call-overload]
    )


if __name__ == "__main__":
    sys.exit(main())
