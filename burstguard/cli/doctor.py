"""``burstguard doctor``: the first thing a cluster operator runs on a node.

It samples this node's /proc twice (``--seconds`` apart), runs the same core model the agent
uses, and prints a report: zones against their watermarks, headroom, reclaim rates, PSI,
fragmentation, watermark sysctls, the shrinker_rwsem exposure verdict and which BPF probes
are usable. Exit codes: 0 healthy, 1 warning (something an operator should act on),
2 could not read /proc (the message names the file).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import asdict
from typing import Any

import click

from burstguard import settings
from burstguard.bpf import support
from burstguard.core import diagnosis, headroom, kernel, rates
from burstguard.procfs import errors, reading, snapshot

EXIT_HEALTHY, EXIT_WARNING, EXIT_UNREADABLE = 0, 1, 2


def _measure(proc_root: str, seconds: float) -> tuple[snapshot.Snapshot, snapshot.Snapshot, float]:
    """Two snapshots ``seconds`` apart, and the CPU cost of one full sample in µs."""
    first = snapshot.read(proc_root, time.monotonic())
    time.sleep(seconds)
    cpu0 = time.process_time_ns()
    second = snapshot.read(proc_root, time.monotonic())
    headroom.assess(second)
    rates.reclaim_rates(first.vmstat, second.vmstat, second.taken_at - first.taken_at)
    cpu_us = (time.process_time_ns() - cpu0) / 1000
    return first, second, cpu_us


def build_report(
    proc_root: str,
    seconds: float,
    burst_bytes: int,
    cache_credit_ratio: float = headroom.DEFAULT_CACHE_CREDIT_RATIO,
) -> dict[str, Any]:
    """Measure and decide; the returned dict is what ``-o json`` prints. Headroom includes
    the agent's default cache credit, so doctor shows what the agent would publish."""
    started = time.monotonic()
    first, snap, cpu_us = _measure(proc_root, seconds)
    elapsed = snap.taken_at - first.taken_at
    reclaim = rates.reclaim_rates(first.vmstat, snap.vmstat, elapsed)
    symbols = reading.find_words(proc_root, "kallsyms", kernel.EVIDENCE_SYMBOLS)
    exposure = kernel.shrinker_exposure(snap.os_release, symbols)
    room = headroom.assess(
        snap, cache_credit_ratio=cache_credit_ratio, shrinker_exposed=exposure.exposed
    )
    tracing = support.detect()
    findings = diagnosis.diagnose(
        diagnosis.Inputs(
            headroom=room,
            rates=reclaim,
            exposure=exposure,
            psi_some_avg10=snap.pressure.some.avg10 if snap.pressure else None,
            missing_counters=rates.missing_counters(snap.vmstat),
            bpf_unusable_reason=tracing.reason_unusable(),
            burst_bytes=burst_bytes,
        )
    )
    verdict = diagnosis.worst(findings)
    return {
        "node": socket.gethostname(),
        "proc_root": proc_root,
        "verdict": "healthy" if verdict < diagnosis.Severity.WARNING else "warning",
        "findings": [
            {"severity": f.severity.name.lower(), "code": f.code, "message": f.message}
            for f in findings
        ],
        "kernel": {
            "release": snap.os_release,
            "shrinker_exposed": exposure.exposed,
            "reason": exposure.reason,
        },
        "zones": [asdict(z) for z in room.zones],
        "headroom_bytes": room.headroom_bytes,
        "watermark_headroom_bytes": room.watermark_headroom_bytes,
        "cache_credit_bytes": room.cache_credit_bytes,
        "cache_credit_ratio": cache_credit_ratio,
        "clean_inactive_file_bytes": headroom.clean_inactive_file_bytes(snap.meminfo),
        "free_bytes": room.free_bytes,
        "watermarks_bytes": {"min": room.min_bytes, "low": room.low_bytes, "high": room.high_bytes},
        "reclaimable_bytes": room.reclaimable_bytes,
        "below_low_zones": list(room.below_low_zones),
        "vmstat_rates": asdict(reclaim),
        "vmstat_rates_window_s": round(elapsed, 3),
        "psi": None if snap.pressure is None else asdict(snap.pressure),
        "fragmentation": {
            "high_order_free_ratio": room.high_order_free_ratio,
            "min_order": headroom.FRAGMENTATION_MIN_ORDER,
            "buddyinfo": [asdict(b) for b in snap.buddy],
        },
        "sysctls": {
            "vm.watermark_scale_factor": snap.watermark_scale_factor,
            "vm.min_free_kbytes": snap.min_free_kbytes,
        },
        "bpf": {
            "usable": tracing.usable,
            "reason": tracing.reason_unusable(),
            "bpftrace": tracing.bpftrace,
            "bpftrace_version": tracing.bpftrace_version,
            "privileged": tracing.privileged,
            "tracefs": tracing.tracefs,
            "btf": tracing.btf,
            "tracepoints": tracing.tracepoints,
            "kprobe_functions": tracing.kprobe_functions,
        },
        "sample_cpu_us": round(cpu_us, 1),
        "doctor_seconds": round(time.monotonic() - started, 3),
    }


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f}"


def render(report: dict[str, Any]) -> str:
    """The human report."""
    k = report["kernel"]
    lines = [
        f"burstguard doctor: node {report['node']}, kernel {k['release']}, "
        f"sampled over {report['vmstat_rates_window_s']} s",
        "",
        f"Verdict: {report['verdict'].upper()}",
    ]
    marks = {"warning": "!", "info": "i", "ok": "✓"}
    lines += [
        f"  {marks[f['severity']]} {f['code']:<24} {f['message']}" for f in report["findings"]
    ]
    lines += ["", "Zones (MiB)         free        min        low       high    reserve   headroom"]
    for z in report["zones"]:
        name = f"{z['node']}/{z['zone']}"
        lines.append(
            f"  {name:<12}{_mib(z['free_bytes']):>11}{_mib(z['min_bytes']):>11}"
            f"{_mib(z['low_bytes']):>11}{_mib(z['high_bytes']):>11}"
            f"{_mib(z['reserve_bytes']):>11}{_mib(z['headroom_bytes']):>11}"
        )
    w = report["watermarks_bytes"]
    lines += [
        f"  {'total':<12}{_mib(report['free_bytes']):>11}{_mib(w['min']):>11}"
        f"{_mib(w['low']):>11}{_mib(w['high']):>11}{'':>11}"
        f"{_mib(report['watermark_headroom_bytes']):>11}",
        "",
        f"Headroom             {_mib(report['headroom_bytes'])} MiB  "
        f"(Σ zones {_mib(report['watermark_headroom_bytes'])}: free − high − lowmem reserve;"
        f" + cache credit {_mib(report['cache_credit_bytes'])}:"
        f" {report['cache_credit_ratio']:g} × clean inactive file"
        f" {_mib(report['clean_inactive_file_bytes'])}, kernels not exposed only)",
        f"Reclaimable cache    {_mib(report['reclaimable_bytes'])} MiB  (Inactive+Active file)",
    ]
    r = report["vmstat_rates"]
    lines.append(
        "Reclaim rates /s     " + ", ".join(f"{name} {value:,.1f}" for name, value in r.items())
    )
    psi = report["psi"]
    if psi is None:
        lines.append("PSI memory           not available on this kernel")
    else:
        full = psi["full"]["avg10"] if psi["full"] else "-"
        lines.append(
            f"PSI memory           some avg10 {psi['some']['avg10']} %, full avg10 {full} %"
        )
    frag = report["fragmentation"]["high_order_free_ratio"]
    lines.append(
        "Fragmentation        "
        + ("-" if frag is None else f"{frag:.0%} of free pages in order>=4 blocks")
    )
    s = report["sysctls"]
    wsf = s["vm.watermark_scale_factor"]
    wsf_text = "-" if wsf is None else f"{wsf} ({wsf / 100:.2f} % of memory between watermarks)"
    lines.append(
        f"Sysctls              vm.watermark_scale_factor={wsf_text}, "
        f"vm.min_free_kbytes={s['vm.min_free_kbytes']}"
    )
    exposed = {True: "EXPOSED", False: "not exposed", None: "unknown"}[k["shrinker_exposed"]]
    lines.append(f"shrinker_rwsem stall {exposed}: {k['reason']}")
    b = report["bpf"]
    tps = ", ".join(f"{tp} {'yes' if ok else 'no'}" for tp, ok in b["tracepoints"].items())
    kps = ", ".join(f"{fn} {'yes' if ok else 'no'}" for fn, ok in b["kprobe_functions"].items())
    lines += [
        "BPF probes           "
        + (
            f"usable ({b['bpftrace_version']}, tracefs {b['tracefs']}, "
            f"BTF {'yes' if b['btf'] else 'no'})"
            if b["usable"]
            else f"unusable: {b['reason']}"
        ),
        f"  tracepoints        {tps}",
        f"  kprobe functions   {kps}",
        "",
        f"One full sample cost {report['sample_cpu_us']:.0f} µs of CPU; doctor took "
        f"{report['doctor_seconds']:.2f} s.",
    ]
    return "\n".join(lines)


@click.command("doctor")
@click.option(
    "--proc-root",
    default=settings.DEFAULT_PROC_ROOT,
    show_default=True,
    help="Where procfs is mounted (e.g. /host/proc in a container).",
)
@click.option(
    "--seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Sampling window for the reclaim rates.",
)
@click.option(
    "--burst-bytes",
    default=diagnosis.DEFAULT_BURST_BYTES,
    show_default=True,
    type=click.IntRange(0),
    help="Headroom one burst needs, bytes.",
)
@click.option(
    "--cache-credit",
    default=headroom.DEFAULT_CACHE_CREDIT_RATIO,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of clean inactive page cache counted as headroom on kernels not exposed to "
    "the shrinker_rwsem stall, as the agent's --cache-credit (0: free memory only).",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def command(
    proc_root: str, seconds: float, burst_bytes: int, cache_credit: float, output: str
) -> None:
    """Check this node's memory headroom, reclaim activity and kernel exposure.

    Exit codes: 0 healthy, 1 warning, 2 could not read /proc.
    """
    try:
        report = build_report(proc_root, seconds, burst_bytes, cache_credit)
    except errors.ProcReadError as exc:
        click.echo(
            f"burstguard doctor: cannot read {exc.path}: {exc.reason}. "
            "Is --proc-root pointing at a mounted procfs?",
            err=True,
        )
        sys.exit(EXIT_UNREADABLE)
    except errors.ProcParseError as exc:
        click.echo(
            f"burstguard doctor: cannot parse {exc.path}: {exc.reason}. "
            "The file is garbled or truncated; check the mount and the kernel.",
            err=True,
        )
        sys.exit(EXIT_UNREADABLE)
    if output == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render(report))
    sys.exit(EXIT_HEALTHY if report["verdict"] == "healthy" else EXIT_WARNING)
