"""Running scenarios N times each and producing the report.

Runs are interleaved (unguarded 0, guarded 0, unguarded 1, ...) rather than grouped, so a
slow stretch of the shared host hurts every scenario alike instead of one. Each run is a
fresh boot with a fresh data disk. A run that fails is recorded with its reason and the
report is still written from the runs that succeeded.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from burstguard.lab import booting, building, hostload, measuring, reporting, scenarios


class HostBusy(RuntimeError):
    """The host did not settle within the wait that ``--quiet-host`` allowed."""


def _say(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def bench(
    chosen: Sequence[scenarios.Scenario],
    runs: int | Mapping[str, int],
    out: Path,
    *,
    machine: booting.Machine | None = None,
    try_kvm: bool = True,
    timeout_s: float = 3600.0,
    resume: bool = False,
    quiet_wait_s: float | None = None,
    progress: Callable[[str], None] = _say,
) -> dict[str, Any]:
    """Build, boot every (scenario, run), measure, write the report; return the JSON doc.

    ``quiet_wait_s``: before each boot, wait up to that long for the host's load to settle
    (:func:`hostload.settle`) and raise :class:`HostBusy` when it does not; None boots at once
    (every run still records its host load, and busy runs are flagged).

    ``runs``: boots per scenario, or per scenario name (a scenario missing from the mapping
    gets one); runs stay interleaved, a scenario with fewer simply drops out of later rounds."""
    per = {s.name: runs if isinstance(runs, int) else runs.get(s.name, 1) for s in chosen}
    if machine is None:
        sizes = {s.workload.memory_mb for s in chosen} or {booting.Machine().memory_mb}
        machine = booting.Machine(memory_mb=max(sizes))
    guest = building.build(with_tools=any(s.guard != "none" for s in chosen))
    accel = booting.choose_accel(guest, out / "boots", try_kvm=try_kvm)
    pin = "pinned" if guest.pinned else "NOT the pinned kernel"
    progress(f"guest {guest.package}={guest.package_version} ({pin}), accel {accel}")
    results: list[measuring.Run] = []
    host_load: dict[tuple[str, int], hostload.HostLoad | None] = {}
    failures: list[dict[str, Any]] = []
    for i in range(max(per.values(), default=0)):
        for s in chosen:
            if i >= per[s.name]:
                continue
            total = per[s.name]
            workdir = out / "boots" / f"{s.name}-{i}"
            progress(f"run {i + 1}/{total} {s.name}: booting ({workdir / 'console.log'})")
            t0 = time.monotonic()
            try:
                files, wall = _finished(workdir) if resume else (None, 0.0)
                if files is None:
                    if quiet_wait_s is not None:
                        _settle(quiet_wait_s, progress)
                    before = hostload.load1()
                    boot = booting.boot(
                        guest,
                        scenarios.kernel_params(s),
                        workdir,
                        accel=accel,
                        machine=machine,
                        timeout_s=timeout_s,
                    )
                    files, wall = boot.files, boot.wall_s
                    for name, data in files.items():
                        (workdir / name).write_bytes(data)
                    (workdir / WALL_FILE).write_text(f"{wall:.1f}\n")
                    load = hostload.HostLoad(
                        before=before,
                        after=hostload.load1(),
                        cores=hostload.cores(),
                        guest_cpus=machine.cpus,
                    )
                    (workdir / LOAD_FILE).write_text(json.dumps(asdict(load)) + "\n")
                else:
                    progress(f"run {i + 1}/{total} {s.name}: reusing the finished boot")
                run = measuring.measure(s.name, i, files, wall)
                host_load[(s.name, i)] = _host_load(workdir)
            except (booting.BootError, measuring.MeasureError) as exc:
                failures.append({"scenario": s.name, "index": i, "error": str(exc)})
                progress(f"run {i + 1}/{total} {s.name}: FAILED: {exc}")
                continue
            results.append(run)
            load_now = host_load.get((s.name, i))
            busy = " (BUSY HOST)" if load_now is not None and load_now.busy else ""
            progress(
                f"run {i + 1}/{total} {s.name}{busy}: {time.monotonic() - t0:.0f} s wall, "
                f"mount max {run.mount.max_ms:.0f} ms, >100ms {run.mount.over_100ms}/"
                f"{run.mount.n}, makespan {run.makespan_s:.1f} s, "
                f"pgscan_kswapd {run.vmstat['pgscan_kswapd']}, "
                f"hold max {run.holds.max_ms:.0f} ms"
            )
            doc = document(
                guest=guest,
                accel=accel,
                machine=machine,
                chosen=chosen,
                results=results,
                failures=failures,
                host_load=host_load,
            )
            reporting.write(doc, results, out)
    doc = document(
        guest=guest,
        accel=accel,
        machine=machine,
        chosen=chosen,
        results=results,
        failures=failures,
        host_load=host_load,
    )
    reporting.write(doc, results, out)
    return doc


WALL_FILE = "wall_s.txt"
"""Host wall-clock seconds of a boot, kept next to its result files."""
LOAD_FILE = "host_load.json"
"""The host's load before and after the boot (:class:`hostload.HostLoad` as JSON)."""


def _host_load(workdir: Path) -> hostload.HostLoad | None:
    f = workdir / LOAD_FILE
    return hostload.HostLoad(**json.loads(f.read_text())) if f.exists() else None


def _settle(wait_s: float, progress: Callable[[str], None]) -> None:
    if hostload.settle(wait_s, progress=progress) is None:
        raise HostBusy(
            f"the host's load stayed above {hostload.QUIET_PER_CORE} per core for {wait_s:.0f} s "
            f"(now {hostload.load1():.2f} on {hostload.cores()} cores): stop other work or "
            "run without --quiet-host (busy runs are then flagged in the report)"
        )


def _finished(workdir: Path) -> tuple[dict[str, bytes] | None, float]:
    """Result files of a boot that already finished in ``workdir`` (for ``--resume``)."""
    if not (workdir / "containers.txt").exists():
        return None, 0.0
    skip = {"console.log", "qemu.stderr", WALL_FILE, LOAD_FILE}
    files = {
        p.name: p.read_bytes()
        for p in workdir.iterdir()
        if p.is_file() and p.name not in skip and not p.name.endswith(".img")
    }
    wall_file = workdir / WALL_FILE
    wall = float(wall_file.read_text()) if wall_file.exists() else 0.0
    return files, wall


def document(
    *,
    guest: building.Guest,
    accel: str,
    machine: booting.Machine,
    chosen: Sequence[scenarios.Scenario],
    results: Sequence[measuring.Run],
    failures: Sequence[dict[str, Any]],
    host_load: dict[tuple[str, int], hostload.HostLoad | None] | None = None,
) -> dict[str, Any]:
    """The JSON result document."""
    summaries = {
        s.name: measuring.summarize([r for r in results if r.scenario == s.name])
        for s in chosen
        if any(r.scenario == s.name for r in results)
    }
    return {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "guest": {
            "release": guest.release,
            "package": guest.package,
            "package_version": guest.package_version,
            "pinned": guest.pinned,
        },
        "accel": accel,
        "machine": asdict(machine),
        "workload": next(
            (asdict(s.workload) for s in chosen if s.pressure),
            asdict(chosen[0].workload) if chosen else {},
        ),
        "scenarios_run": [
            {
                "name": s.name,
                "title": s.title,
                "guard": s.guard,
                "reclaim_cgroups": list(s.reclaim_cgroups),
                "watermark_scale_factor": s.watermark_scale_factor,
            }
            for s in chosen
        ],
        "scenarios": summaries,
        "goals": reporting.goals(summaries),
        "runs": [
            {
                **measuring.run_json(r),
                "host_load": _load_json((host_load or {}).get((r.scenario, r.index))),
            }
            for r in results
        ],
        "failures": list(failures),
    }


def load(path: Path) -> dict[str, Any]:
    """A results.json written earlier."""
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _load_json(load: hostload.HostLoad | None) -> dict[str, Any] | None:
    return None if load is None else {**asdict(load), "busy": load.busy}
