"""The node as a long-running one looks, and the safety stop.

Before each run the page cache is filled to the high watermark (files written, fsynced and
read back, as on any node after a day of uptime), and an anonymous hog (a child process
this module starts and stops by pid) takes a fixed amount of memory. :class:`Watch` samples
free memory against the watermarks a few times a second and trips the safety stop when
MemAvailable falls under ``SAFETY_AVAILABLE_BYTES``: the run is then aborted and everything
it started is stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Final

from burstguard.core import headroom
from burstguard.nodebench import results
from burstguard.procfs import snapshot

SAFETY_AVAILABLE_BYTES: Final = 2 * 2**30
"""Abort a run when MemAvailable falls under this, bytes."""
CHUNK_BYTES: Final = 256 * 2**20
"""Page-cache fill file size, bytes."""
FILL_MARGIN_BYTES: Final = 64 * 2**20
"""Stop filling once free memory is within this of the high watermark, bytes."""


def read(proc_root: str = "/proc") -> headroom.Headroom:
    """The node's memory position now."""
    return headroom.assess(snapshot.read(proc_root, time.monotonic()))


def available_bytes(proc_root: str = "/proc") -> int:
    """MemAvailable, bytes."""
    return snapshot.read(proc_root, time.monotonic()).meminfo.get("MemAvailable", 0)


def vmstat(proc_root: str = "/proc") -> dict[str, int]:
    """/proc/vmstat counters."""
    return dict(snapshot.read(proc_root, time.monotonic()).vmstat)


def fill_page_cache(directory: Path, max_bytes: int, proc_root: str = "/proc") -> int:
    """Read back the files already in ``directory`` (until free memory is at the high
    watermark: the rest stays on disk unread, which keeps later runs from re-reading GiBs),
    then write more (fsynced) until free memory is at the high watermark or ``max_bytes``
    are on disk; returns bytes on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    on_disk = 0
    for path in sorted(directory.glob("fill-*")):
        room = read(proc_root)
        if room.free_bytes - room.high_bytes >= FILL_MARGIN_BYTES:
            with path.open("rb") as f:
                while f.read(8 * 2**20):
                    pass
        on_disk += path.stat().st_size
    block = os.urandom(2**20)
    index = len(list(directory.glob("fill-*")))
    while on_disk + CHUNK_BYTES <= max_bytes:
        room = read(proc_root)
        if room.free_bytes - room.high_bytes < FILL_MARGIN_BYTES:
            break
        if available_bytes(proc_root) < SAFETY_AVAILABLE_BYTES * 2:
            break
        path = directory / f"fill-{index:04d}"
        with path.open("wb") as f:
            for _ in range(CHUNK_BYTES // len(block)):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        with path.open("rb") as f:
            while f.read(8 * 2**20):
                pass
        on_disk += CHUNK_BYTES
        index += 1
    return on_disk


HOG_SOURCE: Final = (
    "import sys,time\n"
    "b=bytearray(int(sys.argv[1]))\n"
    "for i in range(0,len(b),4096): b[i]=1\n"
    "print('ready',flush=True)\n"
    "time.sleep(86400)\n"
)


class Hog:
    """An anonymous-memory hog: a child process holding ``size_bytes`` of touched memory."""

    def __init__(self, size_bytes: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOG_SOURCE, str(size_bytes)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()

    def stop(self) -> None:
        """Stop it (by its pid) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Watch(threading.Thread):
    """Samples memory every ``interval_s``; sets ``tripped`` under the safety threshold."""

    def __init__(self, began_at: float, interval_s: float = 0.25, proc_root: str = "/proc"):
        super().__init__(daemon=True)
        self.began_at = began_at
        self.interval_s = interval_s
        self.proc_root = proc_root
        self.samples: list[results.MemorySample] = []
        self.tripped = ""
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            snap = snapshot.read(self.proc_root, time.monotonic())
            room = headroom.assess(snap)
            avail = snap.meminfo.get("MemAvailable", 0)
            self.samples.append(
                results.MemorySample(
                    t=round(time.time() - self.began_at, 3),
                    free=room.free_bytes,
                    min=room.min_bytes,
                    low=room.low_bytes,
                    high=room.high_bytes,
                    available=avail,
                )
            )
            if avail < SAFETY_AVAILABLE_BYTES and not self.tripped:
                self.tripped = (
                    f"safety stop: MemAvailable {avail / 2**20:.0f} MiB under "
                    f"{SAFETY_AVAILABLE_BYTES / 2**20:.0f} MiB"
                )
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        """End sampling."""
        self._halt.set()
        self.join(timeout=5)
