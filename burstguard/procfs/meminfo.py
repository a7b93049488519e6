"""Parse /proc/meminfo into bytes.

Lines are ``Name:  value [kB]``; the kernel's "kB" is KiB (fs/proc/meminfo.c shifts by 10),
so values with a unit are multiplied by 1024 and unitless ones (``HugePages_Total``) kept.
"""

from __future__ import annotations

from burstguard.procfs import _lines, errors


def parse(text: str, path: str = "/proc/meminfo") -> dict[str, int]:
    """Return name -> bytes (or a plain count for unitless lines)."""
    _lines.require_text(path, text)
    out: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        name, sep, rest = raw.partition(":")
        tokens = rest.split()
        if not sep or not name or not tokens or len(tokens) > 2:
            raise errors.ProcParseError(path, f"line {lineno}: expected 'Name: value [kB]'")
        value = _lines.to_int(path, lineno, tokens[0])
        if len(tokens) == 2:
            if tokens[1] != "kB":
                raise errors.ProcParseError(path, f"line {lineno}: unknown unit {tokens[1]!r}")
            value *= 1024
        out[name] = value
    return out
