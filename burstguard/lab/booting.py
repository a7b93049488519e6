"""Booting the lab guest under qemu and getting its results back, leaving no qemu behind.

Each boot gets a fresh sparse ext4 data disk (so one run's dentries and files never leak into
the next) and an empty raw results disk that the guest's /init fills with a tar archive before
it powers off. qemu runs in its own process group with a wall-clock timeout and is killed as a
group on timeout, on error and when the calling process exits.

Acceleration: KVM is tried once per kernel release with a probe boot and the verdict is cached,
because on this kind of host ``/dev/kvm`` may be a nested software hypervisor on which the 6.1
guest crashes (``cmpxchg16b`` emulation failure) or boots too slowly to use; TCG
(``-accel tcg,thread=multi -cpu max``) always works and is the fallback. Guest time under TCG
runs ~17x slower than native, so runs are compared with each other, never with production.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from burstguard.lab import building

QEMU: Final = "qemu-system-x86_64"
"""The emulator binary (Debian package qemu-system-x86)."""
DATA_DISK_BYTES: Final = 8 << 30
"""Sparse size of each boot's fresh ext4 data disk (bytes; default 8 GiB)."""
RESULTS_DISK_BYTES: Final = 256 << 20
"""Size of the raw disk the guest writes its result tar onto (bytes; default 256 MiB)."""
KVM_PROBE_TIMEOUT_S: Final = 45.0
"""How long a KVM probe boot may take before KVM is judged unusable (seconds)."""

_live: set[subprocess.Popen[bytes]] = set()


def _kill_all() -> None:
    for proc in list(_live):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        _live.discard(proc)


atexit.register(_kill_all)


class BootError(RuntimeError):
    """qemu could not run, timed out, or the guest produced no results."""


@dataclass(frozen=True)
class Machine:
    """The virtual machine's shape."""

    memory_mb: int = 1024
    """Guest RAM, MiB (default 1024: small enough to fill quickly under emulation)."""
    cpus: int = 2
    """Guest vCPUs (default 2)."""


@dataclass(frozen=True)
class Boot:
    """What one boot produced."""

    accel: str
    """``kvm`` or ``tcg``."""
    wall_s: float
    """Host wall-clock time of the boot, seconds."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Result files the guest wrote (name -> content)."""
    console: str = ""
    """Serial console log."""


def available() -> str | None:
    """None when qemu can run here, else the reason it cannot."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} not found (apt-get install qemu-system-x86)"
    try:
        subprocess.run([QEMU, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{QEMU} cannot run: {exc}"
    return None


def _accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host,-cx16"]
    return ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]


def _make_data_disk(path: Path) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(DATA_DISK_BYTES)
    building._run(
        [
            "mke2fs",
            "-q",
            "-t",
            "ext4",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
            str(path),
        ]
    )


def _results(path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with path.open("rb") as f:
        head = f.read(512)
        if not head.strip(b"\0"):
            return files
        f.seek(0)
        with tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    data = tar.extractfile(member)
                    if data is not None:
                        files[member.name.removeprefix("./")] = data.read()
    return files


def boot(
    guest: building.Guest,
    params: dict[str, str],
    workdir: Path,
    *,
    accel: str,
    machine: Machine = Machine(),
    timeout_s: float = 1800.0,
) -> Boot:
    """Boot once with ``lab.<k>=<v>`` parameters; return the guest's result files."""
    workdir.mkdir(parents=True, exist_ok=True)
    data, results, console = workdir / "data.img", workdir / "results.img", workdir / "console.log"
    _make_data_disk(data)
    results.unlink(missing_ok=True)
    with results.open("wb") as f:
        f.truncate(RESULTS_DISK_BYTES)
    cmdline = "console=ttyS0 panic=-1 psi=1 loglevel=4 " + " ".join(
        f"lab.{k}={v}" for k, v in params.items()
    )
    cmd = [
        QEMU,
        *_accel_args(accel),
        "-smp",
        str(machine.cpus),
        "-m",
        str(machine.memory_mb),
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        f"file:{console}",
        "-kernel",
        str(guest.vmlinux),
        "-initrd",
        str(guest.initramfs),
        "-append",
        cmdline,
        "-drive",
        f"file={data},if=virtio,format=raw,cache=none,aio=native,discard=unmap,detect-zeroes=unmap",
        "-drive",
        f"file={results},if=virtio,format=raw,cache=none",
    ]
    if guest.tools is not None:
        cmd += ["-drive", f"file={guest.tools},if=virtio,format=raw,readonly=on,cache=none"]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "qemu.stderr").open("wb"),
            start_new_session=True,
        )
    except OSError as exc:
        raise BootError(f"cannot start {QEMU}: {exc}") from exc
    _live.add(proc)
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise BootError(
            f"guest did not power off within {timeout_s:.0f} s; console log: {console}"
        ) from exc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _live.discard(proc)
        data.unlink(missing_ok=True)
    wall = time.monotonic() - started
    log = console.read_text(errors="replace") if console.exists() else ""
    if rc != 0:
        err = (workdir / "qemu.stderr").read_text(errors="replace").strip()[-500:]
        raise BootError(f"{QEMU} exited {rc}: {err or 'no message'}; console log: {console}")
    files = _results(results)
    results.unlink(missing_ok=True)
    return Boot(accel=accel, wall_s=wall, files=files, console=log)


def choose_accel(guest: building.Guest, workdir: Path, *, try_kvm: bool = True) -> str:
    """``kvm`` when a probe boot reaches /init in time (verdict cached), else ``tcg``."""
    verdict = guest.vmlinux.with_name("kvm.verdict")
    if not try_kvm or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    if verdict.exists():
        return verdict.read_text().split()[0]
    probe = replace(guest, tools=None)
    chosen = "tcg"
    try:
        result = boot(
            probe, {"probe": "1"}, workdir / "kvm-probe", accel="kvm", timeout_s=KVM_PROBE_TIMEOUT_S
        )
        if "LAB: probe ok" in result.console:
            chosen = "kvm"
        reason = f"probe boot {result.wall_s:.1f} s, console: {result.console[-200:]!r}"
    except BootError as exc:
        reason = str(exc)
    verdict.write_text(f"{chosen} {reason}\n")
    return chosen
