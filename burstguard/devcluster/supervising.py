"""Starting and stopping the control-plane processes so that none outlives its cluster.

Every component runs in its own session (``setsid``), so it is the leader of its own process
group: a terminal's Ctrl-C reaches only the Python process, which then stops the cluster in
order, and a stop signals the whole group, grandchildren included. A process is identified by
its pid *and* its start time (``/proc/<pid>/stat`` field 22, clock ticks since boot), so a stop
issued later from another process (``burstguard dev-cluster down``) never signals a recycled
pid. Processes of an attached cluster also get ``PR_SET_PDEATHSIG``: if the Python process is
killed outright (SIGKILL, no atexit), the kernel kills them too. That signal is SIGKILL, not
SIGTERM: etcd and kube-apiserver terminated together wait on each other (open watch streams,
retries) far longer than a test run wants, and nothing would be left to escalate; the data of
a cluster whose owner died is thrown away anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PR_SET_PDEATHSIG: Final = 1
"""prctl(2) option: signal delivered to this process when its parent thread exits."""

STOP_GRACE_S: Final = 5.0
"""Time between SIGTERM and SIGKILL when stopping, seconds."""


@dataclass(frozen=True)
class Record:
    """What identifies one started process, stored in the cluster's state file."""

    name: str
    """Component name (``etcd``, ``kube-apiserver``, ...)."""
    pid: int
    """Process id; also the process-group id (the process is a session leader)."""
    start_ticks: int
    """Start time in clock ticks since boot; guards against a recycled pid."""
    log: str
    """Path of the file receiving its stdout and stderr."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "log": self.log,
        }

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> Record:
        """Inverse of ``to_json``."""
        return Record(str(raw["name"]), int(raw["pid"]), int(raw["start_ticks"]), str(raw["log"]))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` (clock ticks since boot), None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(record: Record) -> bool:
    """True while the recorded process runs (not a zombie, not a recycled pid)."""
    fields = _stat_fields(record.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == record.start_ticks


def group_members(pgid: int) -> list[int]:
    """Pids of live processes in process group ``pgid`` (field 5 of ``/proc/<pid>/stat``)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # runs in the child between fork and exec
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    die_with_parent: bool,
) -> tuple[Record, subprocess.Popen[bytes]]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            # preexec_fn is unsafe only if other threads hold locks the child needs; the hook
            # calls prctl and getppid only.
            preexec_fn=_die_with_parent(os.getpid()) if die_with_parent else None,  # noqa: PLW1509
        )
    ticks = start_ticks(proc.pid)
    return Record(name, proc.pid, ticks if ticks is not None else -1, str(log)), proc


def _signal_group(record: Record, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, sig)


def stop(
    records: Sequence[Record],
    *,
    children: Mapping[int, subprocess.Popen[bytes]] | None = None,
    grace_s: float = STOP_GRACE_S,
) -> list[str]:
    """SIGTERM every group, SIGKILL what is left after ``grace_s``; returns names killed hard.

    ``children`` are the ``Popen`` objects this process owns; they are reaped so that no
    zombie is left. Processes started by another (now gone) process were re-parented to init,
    which reaps them.
    """
    owned = dict(children or {})
    # Only groups whose leader is verified alive now are signalled: a process group id
    # stays allocated while the group has members, so it cannot be recycled afterwards.
    running = [r for r in records if alive(r)]
    for record in running:
        _signal_group(record, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while running and time.monotonic() < deadline:
        for record in running:
            if record.pid in owned:
                owned[record.pid].poll()
        if not any(group_members(r.pid) for r in running):
            break
        time.sleep(0.05)
    killed = []
    for record in running:
        if group_members(record.pid):
            killed.append(record.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
    for record in records:
        if record.pid in owned:
            try:
                owned[record.pid].wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                killed.append(record.name)
    return killed


def tail(path: Path | str, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when absent)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
