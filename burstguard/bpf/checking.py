"""``make bpf-check``: parse-check every script in ``bpf/`` and its spec, on this kernel.

bpftrace 0.17 has no parse-only flag; ``bpftrace -d`` (dry run) parses, runs semantic
analysis and code generation without attaching. Scripts written for kernels this machine
is not (``shrinker_lock.bt`` needs the pre-6.7 ``shrinker_rwsem`` symbol) fail code
generation on ``kaddr()``; such a failure is accepted as *parsed* when semantic analysis
finished and every error is an unresolved data symbol that the spec declares and this
kernel lacks. Anything else (syntax, unknown field, unknown tracepoint) fails the check.

Beyond bpftrace, each script must carry the header STYLE.md item 12 asks for, print the
window marker, define every map its spec names (``@name``), so spec and script cannot drift
apart, and clear a metric map only in ``END`` (the agent takes windows as differences of
cumulative readings). Last, the scripts that compiled are combined into the one program the
agent runs (``combining``), and that program must compile too (``(combined)``).

Exit codes: 0 all good, 1 a script or spec failed, 2 bpftrace missing or no scripts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from burstguard.bpf import combining, decoding, specs
from burstguard.procfs import reading

HEADER_FIELDS: Final = ("What:", "Probes:", "Kernel:", "Units:", "Overhead:", "Example output")
"""Fields every script header must have (STYLE.md item 12)."""

_SYMBOL_ERROR = re.compile(r"Failed to resolve kernel symbol: (\S+)")


@dataclass(frozen=True)
class Result:
    """The verdict on one script."""

    name: str
    """Script name."""
    ok: bool
    """Passed."""
    how: str
    """``compiled``, ``parsed (...)`` or the failure."""


def static_problems(spec: specs.ScriptSpec, text: str) -> list[str]:
    """Header fields, window marker and spec maps the script text lacks."""
    problems = [f"header lacks {f!r}" for f in HEADER_FIELDS if f not in text.split("*/", 1)[0]]
    if decoding.WINDOW_MARKER not in text:
        problems.append(f"never prints {decoding.WINDOW_MARKER!r}")
    for metric in spec.metrics:
        if not re.search(rf"@{re.escape(metric.name)}\b", text):
            problems.append(f"spec metric {metric.name!r} is not a map of the script")
        elif not re.search(rf"print\(@{re.escape(metric.name)}\)", text):
            problems.append(f"map @{metric.name} is never printed")
    try:
        blocks = combining.blocks(text, str(spec.script_path))
    except combining.CombineError as exc:
        return [*problems, str(exc)]
    for block in blocks:
        for metric in spec.metrics:
            if block.header != "END" and f"clear(@{metric.name})" in block.body:
                problems.append(
                    f"map @{metric.name} is cleared in {block.header!r}: metric maps are "
                    "cumulative (cleared only in END)"
                )
    return problems


def classify(
    returncode: int, output: str, spec: specs.ScriptSpec, absent: frozenset[str]
) -> tuple[bool, str]:
    """Decide from a ``bpftrace -d`` run; ``absent`` = declared symbols this kernel lacks."""
    if returncode == 0:
        return True, "compiled"
    errors = [
        line.strip()
        for line in output.splitlines()
        if "ERROR" in line and "RLIMIT_MEMLOCK" not in line
    ]
    unresolved = {m.group(1) for e in errors for m in [_SYMBOL_ERROR.search(e)] if m}
    only_symbols = errors and all(_SYMBOL_ERROR.search(e) for e in errors)
    if (
        "AST after: Semantic" in output
        and only_symbols
        and unresolved <= set(spec.kernel.symbols)
        and unresolved <= absent
    ):
        return True, f"parsed (code generation needs {', '.join(sorted(unresolved))}, absent)"
    return False, errors[-1] if errors else f"bpftrace -d exited with {returncode}"


def check(directory: Path, binary: str, proc_root: str = "/proc") -> list[Result]:
    """Check every spec/script pair in ``directory``."""
    results = []
    loaded: list[specs.ScriptSpec] = []
    for spec_path in sorted(directory.glob("*.yaml")):
        try:
            spec = specs.load(spec_path)
        except specs.SpecError as exc:
            results.append(Result(spec_path.stem, False, str(exc)))
            continue
        loaded.append(spec)
        problems = static_problems(spec, spec.script_path.read_text(encoding="utf-8"))
        if problems:
            results.append(Result(spec.name, False, "; ".join(problems)))
            continue
        found = reading.find_words(proc_root, "kallsyms", frozenset(spec.kernel.symbols))
        absent = frozenset(spec.kernel.symbols) - (found or frozenset())
        run = subprocess.run(
            [binary, "-d", str(spec.script_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        ok, how = classify(run.returncode, run.stdout + run.stderr, spec, absent)
        results.append(Result(spec.name, ok, how))
    compiled = [s for s in loaded if any(r.name == s.name and r.how == "compiled" for r in results)]
    if compiled:
        results.append(combined(compiled, binary))
    scripts = {p.stem for p in directory.glob("*.bt")}
    for orphan in sorted(scripts - {r.name for r in results}):
        results.append(Result(orphan, False, "no spec (<name>.yaml) for this script"))
    return results


def combined(scripts: list[specs.ScriptSpec], binary: str) -> Result:
    """Compile the one program the agent would run for ``scripts``."""
    name = "(combined)"
    try:
        program = combining.combine((s, s.script_path.read_text(encoding="utf-8")) for s in scripts)
    except combining.CombineError as exc:
        return Result(name, False, str(exc))
    run = subprocess.run(
        [binary, "-d", "-e", program], capture_output=True, text=True, timeout=120, check=False
    )
    if run.returncode == 0:
        return Result(name, True, "compiled: " + ", ".join(s.name for s in scripts))
    errors = [e for e in (run.stdout + run.stderr).splitlines() if "ERROR" in e]
    errors = [e for e in errors if "RLIMIT_MEMLOCK" not in e]
    return Result(name, False, errors[-1] if errors else f"bpftrace -d exited {run.returncode}")


def main(argv: list[str] | None = None) -> int:
    """``python -m burstguard.bpf.checking [DIR]``."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else specs.scripts_dir()
    if directory is None or not directory.is_dir() or not any(directory.glob("*.bt")):
        print(f"bpf-check: no scripts found in {directory}", file=sys.stderr)
        return 2
    binary = shutil.which("bpftrace")
    if binary is None:
        print(
            "bpf-check: bpftrace not found; install it (apt-get install bpftrace)", file=sys.stderr
        )
        return 2
    results = check(directory, binary)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<22} {r.how}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
