"""``burstguard lab``: reproduce the pre-6.7 mount stall in a qemu guest and measure the guard.

Exit codes: 0 every run finished; 1 some runs failed (the report covers the rest); 2 bad
usage; 3 qemu cannot run on this host; 4 the guest cannot be built (missing tool or package);
5 ``--quiet-host`` and the host's load did not settle.

``--publish DIR`` runs nothing: it regenerates the results in LAB.md, the README's lab table
and ``docs/lab/`` from a finished run set.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from burstguard.lab import benchmarking, booting, building, publishing, scenarios


def _names(values: tuple[str, ...], runs: int) -> dict[str, int]:
    """Scenario name -> boots, in order: ``NAME`` gets ``--runs``, ``NAME:N`` gets N."""
    chosen: dict[str, int] = {}
    for v in values:
        for item in (x.strip() for x in v.split(",")):
            if not item:
                continue
            name, _, count = item.partition(":")
            if count and not (count.isdigit() and 1 <= int(count) <= 50):
                raise click.UsageError(f"{item}: runs after ':' must be 1-50")
            chosen[name] = int(count) if count else runs
    return chosen or {"unguarded": runs, "guarded": runs}


def _sizes(values: tuple[str, ...]) -> dict[str, int]:
    """``SIZE=N`` options as a mapping."""
    sizes: dict[str, int] = {}
    for v in values:
        name, sep, number = v.partition("=")
        if not sep or not name.strip() or not number.lstrip("-").isdigit():
            raise click.UsageError(f"--set {v}: expected SIZE=INTEGER")
        sizes[name.strip()] = int(number)
    return sizes


@click.command("lab")
@click.option(
    "--scenario",
    "-s",
    "scenario_opts",
    multiple=True,
    metavar="NAME[:RUNS][,...]",
    help=f"Scenarios to run (repeatable or comma list): {', '.join(scenarios.SCENARIOS)}. "
    "NAME:RUNS overrides --runs for that scenario. Default: unguarded,guarded.",
)
@click.option(
    "--runs",
    "-n",
    default=3,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Boots per scenario (runs are interleaved across scenarios).",
)
@click.option(
    "--out",
    "-o",
    default="lab-results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for results.json, REPORT.md, latency-cdf.png and boot logs.",
)
@click.option(
    "--quick",
    "--smoke",
    "quick",
    is_flag=True,
    help="The CI smoke shape: a 1 GiB guest, tiny slab, no pressure, six containers; "
    "minutes instead of the full shape's ~10 (reproduces nothing).",
)
@click.option(
    "--set",
    "size_opts",
    multiple=True,
    metavar="SIZE=N",
    help="Change one workload size for every scenario (repeatable), e.g. grow_mb=256: "
    "names as in burstguard/lab/scenarios.py's Workload. The control keeps its "
    "no-pressure sizes. The report records the sizes it ran with.",
)
@click.option(
    "--memory-mb",
    default=None,
    type=click.IntRange(256, 16384),
    help="Guest RAM, overriding the shape's (3072; --quick 1024). The sizes assume the default.",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=3600.0,
    show_default=True,
    type=float,
    help="Longest a single boot may take, seconds.",
)
@click.option("--no-kvm", is_flag=True, help="Do not probe KVM; use TCG emulation.")
@click.option(
    "--quiet-host",
    "quiet_wait_s",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Before each boot, wait up to SECONDS for the host's 1-minute load to fall under "
    "0.5 per core, and refuse to boot (exit 5) when it does not. Without it runs start at once "
    "and busy ones are flagged in the report.",
)
@click.option(
    "--publish",
    "publish_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    metavar="DIR",
    help="Run nothing: regenerate LAB.md's results, the README's lab table and docs/lab/ "
    "from DIR/results.json (run from the checkout's root).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Reuse boots that already finished in --out (re-measures them) and run the rest.",
)
def command(  # noqa: PLR0917 (click passes options as arguments)
    scenario_opts: tuple[str, ...],
    runs: int,
    out: Path,
    quick: bool,
    size_opts: tuple[str, ...],
    memory_mb: int | None,
    timeout_s: float,
    no_kvm: bool,
    quiet_wait_s: float | None,
    resume: bool,
    publish_dir: Path | None,
) -> None:
    """Reproduce the shrinker_rwsem mount stall in a 6.1 guest; compare guarded runs."""
    if publish_dir is not None:
        try:
            written = publishing.publish(publish_dir, Path.cwd())
        except publishing.PublishError as exc:
            raise click.UsageError(str(exc)) from exc
        for path in written:
            click.echo(f"wrote {path}")
        return
    per = _names(scenario_opts, runs)
    names = list(per)
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown:
        raise click.UsageError(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(scenarios.SCENARIOS)}"
        )
    chosen = [scenarios.SCENARIOS[n] for n in names]
    if quick:
        chosen = [scenarios.quick(s) for s in chosen]
    if size_opts:
        sizes = _sizes(size_opts)
        try:
            chosen = [scenarios.with_sizes(s, sizes) for s in chosen]
        except ValueError as exc:
            raise click.UsageError(f"--set: {exc}") from exc
    # SIGTERM (CI timeout, kill) must still stop qemu: turn it into SystemExit so the
    # booting module's exit hook kills the process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = booting.available()
    if reason:
        click.echo(f"lab: cannot run: {reason}", err=True)
        raise SystemExit(3)
    try:
        doc = benchmarking.bench(
            chosen,
            per,
            out,
            machine=None if memory_mb is None else booting.Machine(memory_mb=memory_mb),
            try_kvm=not no_kvm,
            timeout_s=timeout_s,
            resume=resume,
            quiet_wait_s=quiet_wait_s,
        )
    except benchmarking.HostBusy as exc:
        click.echo(f"lab: refusing to boot on a busy host: {exc}", err=True)
        raise SystemExit(5) from exc
    except building.BuildError as exc:
        click.echo(f"lab: cannot build the guest: {exc}", err=True)
        raise SystemExit(4) from exc
    except KeyboardInterrupt:
        click.echo("lab: interrupted; qemu stopped", err=True)
        raise SystemExit(130) from None
    for g in doc["goals"]:
        click.echo(f"{'met' if g['met'] else 'NOT met'}: {g['goal']}: {g['measured']}")
    click.echo(f"report: {out / 'REPORT.md'}")
    if doc["failures"]:
        for f in doc["failures"]:
            click.echo(f"failed: {f['scenario']} run {f['index']}: {f['error']}", err=True)
        raise SystemExit(1)
