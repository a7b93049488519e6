"""Parse /proc/vmstat (``name value`` per line) into a dict of counters and gauges.

Which names exist depends on the kernel (``allocstall`` was split per zone in 4.8,
``pgscan_kswapd`` was per zone before that), so the result is a plain mapping and the core
rate functions decide what a missing name means.
"""

from __future__ import annotations

from burstguard.procfs import _lines, errors


def parse(text: str, path: str = "/proc/vmstat") -> dict[str, int]:
    """Parse every line; raise ProcParseError on a line that is not ``name integer``."""
    _lines.require_text(path, text)
    out: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        if len(tokens) != 2:
            raise errors.ProcParseError(path, f"line {lineno}: expected 'name value', got {raw!r}")
        out[tokens[0]] = _lines.to_int(path, lineno, tokens[1])
    return out
