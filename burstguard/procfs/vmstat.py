"""Parse /proc/vmstat (``name value`` per line) into a dict of counters and gauges.

Which names exist depends on the kernel (``allocstall`` was split per zone in 4.8,
``pgscan_kswapd`` was per zone before that), so the result is a plain mapping and the core
rate functions decide what a missing name means.

:func:`parse` tries a fast path first (the whole text decoded as one JSON object, in C) and
falls back to the line parser, which alone produces errors, whenever the text is not exactly
``name value`` lines; so garbled input gets the same answer and the same message as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from burstguard.procfs import _lines, errors

_loads: Callable[[str], Any]
try:  # a dependency of the package; the procfs modules also run on a bare interpreter
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - exercised by tests/chart/test_privileges.py
    _loads = json.loads

_NOT_IN_FAST = ('"', "\\", "\t", "\r")
"""JSON string syntax, and JSON whitespace that the line parser reads differently."""


def parse(text: str, path: str = "/proc/vmstat") -> dict[str, int]:
    """Parse every line; raise ProcParseError on a line that is not ``name integer``."""
    _lines.require_text(path, text)
    fast = parse_fast(text)
    return fast if fast is not None else parse_lines(text, path)


def parse_fast(text: str) -> dict[str, int] | None:
    """The parse of well-formed text, or None to leave the text to :func:`parse_lines`.

    ``name value`` lines become one JSON object (``{"name":value,...}``) that orjson decodes
    in C (the stdlib ``json`` where orjson is not installed: same answers, about half the
    gain). The rewrite is only valid JSON when every line is exactly ``name value`` with one
    space and nothing a JSON string cannot hold raw, and the result counts only when every
    value decoded to an int; anything else (blank lines, extra tokens, floats, leading zeros,
    non-ASCII text) returns None and the line parser decides. Duplicate names keep the last
    value, as in the line parser.
    """
    if not text.endswith("\n") or not text.isascii():
        return None
    if any(c in text for c in _NOT_IN_FAST):
        return None
    try:
        out = _loads('{"' + text[:-1].replace(" ", '":').replace("\n", ',"') + "}")
    except ValueError:  # orjson's and json's JSONDecodeError both are ValueErrors
        return None
    if not isinstance(out, dict) or "" in out:  # "" is a line that starts with a space
        return None
    if out and set(map(type, out.values())) != {int}:
        return None
    return out


def parse_lines(text: str, path: str = "/proc/vmstat") -> dict[str, int]:
    """The line-by-line parser: slower, names the line of every error."""
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
