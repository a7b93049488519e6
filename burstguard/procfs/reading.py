"""Thin, size-capped readers for /proc files under a configurable root.

/proc files report ``st_size`` 0, so the size is never trusted: we read up to a cap and fail
if the file is larger (prometheus/procfs ``internal/util/readfile.go`` does the same). The
root is configurable because the agent's DaemonSet mounts the host's /proc at /host/proc.

Reads go in 64 KiB chunks: a single huge ``read()`` on a sysctl file fails with ENOMEM
(proc_sys_call_handler kmallocs a buffer of the requested size), seen on 6.18.
"""

from __future__ import annotations

import os

from burstguard import settings
from burstguard.procfs import errors

_CHUNK = 64 * 1024


def path_of(proc_root: str, relpath: str) -> str:
    """Join the proc root and a path relative to it (``sys/vm/min_free_kbytes``)."""
    return os.path.join(proc_root, relpath.lstrip("/"))


def read_text(proc_root: str, relpath: str, max_bytes: int = settings.MAX_PROC_FILE_BYTES) -> str:
    """Read one file as text, at most ``max_bytes``; raise ProcReadError/ProcParseError."""
    path = path_of(proc_root, relpath)
    try:
        with open(path, "rb", buffering=0) as f:
            parts: list[bytes] = []
            size = 0
            while size <= max_bytes:
                part = f.read(_CHUNK)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        data = b"".join(parts)
    except FileNotFoundError as exc:
        raise errors.ProcReadError(path, "no such file") from exc
    except PermissionError as exc:
        raise errors.ProcReadError(path, "permission denied") from exc
    except OSError as exc:
        raise errors.ProcReadError(path, exc.strerror or str(exc)) from exc
    if len(data) > max_bytes:
        raise errors.ProcReadError(path, f"larger than the {max_bytes}-byte read cap")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise errors.ProcParseError(path, f"not ASCII text at byte {exc.start}") from exc


def read_optional(proc_root: str, relpath: str) -> str | None:
    """Like :func:`read_text` but None when the file does not exist (e.g. PSI disabled)."""
    try:
        return read_text(proc_root, relpath)
    except errors.ProcReadError as exc:
        if exc.reason == "no such file":
            return None
        raise


def find_words(proc_root: str, relpath: str, words: frozenset[str]) -> frozenset[str] | None:
    """Stream a large file (``kallsyms``) and return which of ``words`` appear as a field.

    Returns None when the file cannot be read. Streaming keeps memory flat: kallsyms is
    several MiB, far above the read cap used for the small files.
    """
    path = path_of(proc_root, relpath)
    wanted = {w.encode() for w in words}
    found: set[bytes] = set()
    try:
        with open(path, "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] in wanted:
                    found.add(fields[2])
    except OSError:
        return None
    return frozenset(w.decode() for w in found)
