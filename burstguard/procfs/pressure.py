"""Parse /proc/pressure/memory (PSI, Documentation/accounting/psi.rst).

``some`` is the share of time at least one task stalled on memory, ``full`` the share when
all non-idle tasks did; ``avg*`` are percentages, ``total`` is cumulative microseconds.
Measured here, PSI avg10 did not predict burst trouble (reference host-6.18-bursts), so it is
reported for operators, not used to close nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from burstguard.procfs import _lines, errors


@dataclass(frozen=True)
class PressureLine:
    """One PSI line."""

    avg10: float
    """Percent of the last 10 s."""
    avg60: float
    """Percent of the last 60 s."""
    avg300: float
    """Percent of the last 300 s."""
    total_us: int
    """Cumulative stall time, microseconds."""


@dataclass(frozen=True)
class Pressure:
    """Memory pressure stall information."""

    some: PressureLine
    """At least one task stalled."""
    full: PressureLine | None
    """All non-idle tasks stalled (absent on kernels before 5.13 for the system level)."""


def _line(path: str, lineno: int, tokens: list[str]) -> PressureLine:
    fields: dict[str, str] = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if not sep:
            raise errors.ProcParseError(path, f"line {lineno}: expected key=value, got {tok!r}")
        fields[key] = value
    missing = {"avg10", "avg60", "avg300", "total"} - fields.keys()
    if missing:
        raise errors.ProcParseError(path, f"line {lineno}: missing {', '.join(sorted(missing))}")
    return PressureLine(
        avg10=_lines.to_float(path, lineno, fields["avg10"]),
        avg60=_lines.to_float(path, lineno, fields["avg60"]),
        avg300=_lines.to_float(path, lineno, fields["avg300"]),
        total_us=_lines.to_int(path, lineno, fields["total"]),
    )


def parse(text: str, path: str = "/proc/pressure/memory") -> Pressure:
    """Parse the ``some`` and optional ``full`` lines."""
    _lines.require_text(path, text)
    lines: dict[str, PressureLine] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        if tokens[0] not in ("some", "full"):
            raise errors.ProcParseError(path, f"line {lineno}: unknown kind {tokens[0]!r}")
        lines[tokens[0]] = _line(path, lineno, tokens[1:])
    if "some" not in lines:
        raise errors.ProcParseError(path, "no 'some' line")
    return Pressure(some=lines["some"], full=lines.get("full"))
