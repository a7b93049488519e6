"""Bounded real workloads for the node tests: overlay mounts, page-cache fill, anonymous hog.

Sizes are derived from the machine's own free memory so the pressure is real (page cache has
to be reclaimed) but never threatens the node: the hog leaves several GiB available and the
fill is only clean page cache, which the kernel can always drop. Everything is cleaned up by
the context managers, also on failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

GIB = 1024**3
_libc = ctypes.CDLL(None, use_errno=True)


def meminfo_bytes(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0]) * 1024
    raise KeyError(field)


def overlay_mounts(count: int, base: Path) -> int:
    """Mount and unmount ``count`` overlays under ``base`` with mount(2); return mounts done."""
    done = 0
    for i in range(count):
        d = base / f"o{i % 4}"
        for sub in ("l", "u", "w", "m"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={d / 'l'},upperdir={d / 'u'},workdir={d / 'w'}".encode()
        if _libc.mount(b"overlay", str(d / "m").encode(), b"overlay", 0, opts) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount overlay: {os.strerror(err)}")
        _libc.umount2(str(d / "m").encode(), 0)
        done += 1
    return done


@contextlib.contextmanager
def mount_loop(count: int) -> Iterator[threading.Thread]:
    """Run :func:`overlay_mounts` in a thread; joins and cleans up on exit."""
    base = Path(tempfile.mkdtemp(prefix="bg-ovl-"))
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(overlay_mounts(count, base)), daemon=True)
    t.start()
    try:
        yield t
    finally:
        t.join(timeout=120)
        shutil.rmtree(base, ignore_errors=True)


HOG = """
import mmap, sys, time
n = int(sys.argv[1])
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
block = b"\\x01" * (64 << 20)
for i in range(0, n - len(block) + 1, len(block)):
    m[i:i + len(block)] = block
print("ready", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def anon_hog(size: int) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``size`` bytes of touched anonymous memory until the block exits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOG, str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def page_cache_file(size: int, directory: str = "/var/tmp") -> Iterator[Path]:
    """Write ``size`` bytes with dd (page-cache fill); delete the file afterwards.

    ``conv=fsync`` leaves the cache clean when the block is entered (as pulled image layers
    are): ``drop_caches=1`` frees only clean pages, so dirty ones would make what a drop
    frees depend on writeback timing.
    """
    path = Path(tempfile.mkdtemp(prefix="bg-fill-", dir=directory)) / "fill"
    try:
        subprocess.run(
            [
                "dd",
                "if=/dev/zero",
                f"of={path}",
                "bs=1M",
                f"count={size >> 20}",
                "conv=fsync",
                "status=none",
            ],
            check=True,
            timeout=600,
        )
        yield path
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def pressure_sizes() -> tuple[int, int]:
    """(hog bytes, fill bytes) that make the kernel reclaim page cache on this machine."""
    free = meminfo_bytes("MemFree")
    available = meminfo_bytes("MemAvailable")
    hog = max(0, min(int(free * 0.6), available - 6 * GIB))
    disk = shutil.disk_usage("/var/tmp").free
    fill = min(free - hog + 2 * GIB, disk - 5 * GIB)
    return hog, max(fill, GIB)
