"""The metric specs that pair with each bpftrace script, and where the scripts live.

Every ``bpf/<name>.bt`` has a ``bpf/<name>.yaml`` (schema ``bpf/spec.schema.json``) naming
the maps it prints, their type and unit, and what the kernel must offer (tracepoints,
kprobe-able functions, data symbols, release range). The agent decides from the spec alone
whether a script can run on a node, and the exporter turns maps into metrics by rule: map
``@x_ns`` becomes ``burstguard_bpf_x_seconds`` (see ``exporter.names``). Loading validates
the fields the code relies on and raises :class:`SpecError` with the file and field, so a bad
spec is a clear start-up message rather than a ``KeyError`` in the sampling loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SCRIPTS_DIR_ENV: Final = "BURSTGUARD_BPF_DIR"
"""Environment variable naming the folder with the ``.bt``/``.yaml`` pairs."""

HISTOGRAM: Final = "histogram"
COUNTER: Final = "counter"


class SpecError(ValueError):
    """A spec file that is missing, unreadable or inconsistent with its script."""


@dataclass(frozen=True)
class MetricSpec:
    """One bpftrace map and the metric it becomes."""

    name: str
    """Map name without ``@``; the metric name follows from it by rule."""
    type: str
    """``histogram`` (log2 ``hist()``) or ``counter`` (``count()``/``sum()`` per window)."""
    unit: str
    """``nanoseconds``, ``pages`` or ``events``: the unit of the values the map holds."""
    help: str
    """One-line metric help text."""
    label: str | None = None
    """Label name the map key becomes; None for an unkeyed map."""
    feeds: str | None = None
    """Node-state input fed from this histogram's window p99 (``mount_p99``/``lock_wait_p99``)."""


@dataclass(frozen=True)
class KernelNeeds:
    """What the kernel must offer for the script to attach."""

    min_release: tuple[int, int]
    """Oldest (major, minor) release with the probes."""
    below_release: tuple[int, int] | None
    """First (major, minor) release the script no longer applies to; None = no bound."""
    tracepoints: tuple[str, ...]
    """``category:event`` names under tracefs ``events/``."""
    kprobes: tuple[str, ...]
    """Functions that must be traceable (``available_filter_functions``)."""
    symbols: tuple[str, ...]
    """Data symbols resolved with ``kaddr()`` (``/proc/kallsyms``)."""


@dataclass(frozen=True)
class ScriptSpec:
    """One script and its metrics."""

    name: str
    """Script name (file stem)."""
    script_path: Path
    """Absolute path of the ``.bt`` file."""
    description: str
    """What the script measures."""
    kernel: KernelNeeds
    """Kernel requirements."""
    interval_s: int
    """Window length in seconds: maps are printed (cumulative) this often."""
    priority: int
    """Lower first; tracepoint scripts are 0, kprobe scripts 10 (they cost more)."""
    metrics: tuple[MetricSpec, ...]
    """The maps the script prints."""


def _release(text: object, where: str) -> tuple[int, int]:
    if not isinstance(text, str):
        raise SpecError(f"{where}: must be a string like '6.7', got {text!r}")
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise SpecError(f"{where}: must look like '6.7', got {text!r}")
    return int(parts[0]), int(parts[1])


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: must be a list of strings")
    return tuple(value)


def parse(body: Any, spec_path: Path) -> ScriptSpec:
    """Build a :class:`ScriptSpec` from a loaded YAML document; raise :class:`SpecError`."""
    where = str(spec_path)
    if not isinstance(body, dict):
        raise SpecError(f"{where}: must be a mapping")
    try:
        kernel = body["kernel"]
        metrics_raw = body["metrics"]
        name = str(body["name"])
        script = str(body["script"])
    except KeyError as exc:
        raise SpecError(f"{where}: missing field {exc.args[0]!r}") from exc
    if script != f"{name}.bt" or spec_path.stem != name:
        raise SpecError(f"{where}: name {name!r} must match the file stem and script {script!r}")
    if not isinstance(kernel, dict):
        raise SpecError(f"{where}: kernel must be a mapping")
    below = kernel.get("below")
    needs = KernelNeeds(
        min_release=_release(kernel.get("min"), f"{where}: kernel.min"),
        below_release=None if below is None else _release(below, f"{where}: kernel.below"),
        tracepoints=_strings(kernel.get("tracepoints", []), f"{where}: kernel.tracepoints"),
        kprobes=_strings(kernel.get("kprobes", []), f"{where}: kernel.kprobes"),
        symbols=_strings(kernel.get("symbols", []), f"{where}: kernel.symbols"),
    )
    if not isinstance(metrics_raw, list) or not metrics_raw:
        raise SpecError(f"{where}: metrics must be a non-empty list")
    metrics = []
    for i, m in enumerate(metrics_raw):
        if not isinstance(m, dict):
            raise SpecError(f"{where}: metrics[{i}] must be a mapping")
        if m.get("type") not in (HISTOGRAM, COUNTER):
            raise SpecError(f"{where}: metrics[{i}].type must be histogram or counter")
        labels = _strings(m.get("labels", []), f"{where}: metrics[{i}].labels")
        if len(labels) > 1:
            raise SpecError(f"{where}: metrics[{i}].labels: at most one label")
        metrics.append(
            MetricSpec(
                name=str(m.get("name", "")),
                type=str(m["type"]),
                unit=str(m.get("unit", "")),
                help=str(m.get("help", "")),
                label=labels[0] if labels else None,
                feeds=m.get("feeds"),
            )
        )
    return ScriptSpec(
        name=name,
        script_path=spec_path.with_name(script).resolve(),
        description=str(body.get("description", "")),
        kernel=needs,
        interval_s=int(body.get("interval_seconds", 5)),
        priority=int(body.get("priority", 0)),
        metrics=tuple(metrics),
    )


def load(spec_path: Path) -> ScriptSpec:
    """Read and parse one ``<name>.yaml``; the paired ``.bt`` must exist next to it."""
    # Imported here, where a spec is read: the incident lab's guard imports this module but
    # runs no bpftrace, and under emulation the YAML parser's import alone takes over a second.
    import yaml  # noqa: PLC0415

    try:
        body = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{spec_path}: cannot read spec: {exc}") from exc
    spec = parse(body, spec_path)
    if not spec.script_path.is_file():
        raise SpecError(f"{spec_path}: script {spec.script_path} does not exist")
    return spec


def scripts_dir(env: dict[str, str] | None = None) -> Path | None:
    """Folder of the scripts: ``$BURSTGUARD_BPF_DIR``, else ``bpf/`` of a source checkout.

    The DaemonSet image copies ``bpf/`` and sets the variable; a checkout (tests, CI) finds
    the folder next to the package. None when neither exists.
    """
    e = os.environ if env is None else env
    configured = e.get(SCRIPTS_DIR_ENV)
    if configured:
        path = Path(configured)
        return path if path.is_dir() else None
    checkout = Path(__file__).resolve().parents[2] / "bpf"
    return checkout if checkout.is_dir() else None


def load_all(directory: Path) -> tuple[ScriptSpec, ...]:
    """Every spec in ``directory``, sorted by (priority, name)."""
    found = [load(p) for p in sorted(directory.glob("*.yaml"))]
    return tuple(sorted(found, key=lambda s: (s.priority, s.name)))
