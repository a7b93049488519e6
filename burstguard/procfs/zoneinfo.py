"""Parse /proc/zoneinfo into one record per (NUMA node, zone).

The watermarks (``min``, ``low``, ``high``) are what kswapd and direct reclaim act on
(Documentation/admin-guide/sysctl/vm.rst, ``watermark_scale_factor``): kswapd wakes when a
zone's free pages fall below ``low`` and sleeps again above ``high``; allocations below
``min`` enter direct reclaim. Values are in pages, as the kernel prints them.

An absent line is ``None``, never 0 (prometheus/procfs ``zoneinfo.go`` convention): older
kernels lack ``managed``/``promo`` and a 0 would read as "no memory". A zone without its
``pages free`` line means the read was cut short, which is a parse error.

:func:`parse` tries a fast path first: one multi-line regex finds only the lines a zone
record uses (headers, ``pages free``, watermarks, ``protection:``) instead of splitting all
of them (most are per-node and per-CPU statistics). It gives up (None) on anything the line
parser would reject or read differently, and the line parser, which alone produces errors,
decides; so garbled input gets the same answer and the same message as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from burstguard.procfs import _lines, errors

_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)\s*$")
_SIMPLE_FIELDS = ("min", "low", "high", "spanned", "present", "managed", "boost", "promo")
_USED_FIELDS = ("min", "low", "high", "managed", "present")
_WANTED = re.compile(
    r"\n(?:Node[ ]+([0-9]+),[ ]+zone[ ]+([^ \n]+)[ ]*+(?=\n)|(Node)"
    r"|[ ]*+(?=[pmlhsb])(?:(?:pages[ ]+free|("
    + "|".join(_USED_FIELDS)
    + r"))[ ]+([^ \n]+)[ ]*+(?=\n)"
    r"|protection:((?:[ ][^\n]*)?)(?=\n)"
    r"|(?:spanned|boost|promo)[ ]+(?![0-9]+[ ]*+\n)([^ \n]+)[ ]*+(?=\n)))"
)
"""On plain text (``_lines.plain``) after a leading newline: the lines the line parser reads.
Zone headers come split into node and zone (a header of any other shape matches as bare
``Node``, and the fast path gives up). Fields a :class:`Zone` does not keep are matched only
when their value is not plain digits (the line parser merely checks them, and digits always
pass), so the fast path gives up on exactly those. Each match starts at a newline (a literal
the regex engine finds in C); the lookahead rejects most lines on their first letter and the
possessive runs of spaces never backtrack."""


@dataclass(frozen=True)
class Zone:
    """One memory zone of one NUMA node; counts are pages (None when the kernel omits them)."""

    node: int
    """NUMA node id."""
    name: str
    """Zone name: DMA, DMA32, Normal, Movable, Device."""
    free_pages: int
    """Free pages now."""
    min_pages: int | None = None
    """``min`` watermark: below it allocations enter direct reclaim."""
    low_pages: int | None = None
    """``low`` watermark: below it kswapd is woken."""
    high_pages: int | None = None
    """``high`` watermark: kswapd sleeps once free is above it."""
    managed_pages: int | None = None
    """Pages managed by the buddy allocator (0 for an empty zone)."""
    present_pages: int | None = None
    """Physical pages present in the zone."""
    protection: tuple[int, ...] | None = None
    """lowmem_reserve per allocation class zone index, pages (``protection:`` line)."""


def parse(text: str, path: str = "/proc/zoneinfo") -> tuple[Zone, ...]:
    """Parse the whole file; raise ProcParseError with the path on anything unexpected."""
    _lines.require_text(path, text)
    fast = parse_fast(text)
    return fast if fast is not None else parse_lines(text, path)


def _zone(node: int, name: str, counts: dict[str, int], protection: tuple[int, ...] | None) -> Zone:
    """A zone from the values of its lines (keyed by field name, ``free`` for pages free)."""
    return Zone(
        node,
        name,
        counts["free"],
        counts.get("min"),
        counts.get("low"),
        counts.get("high"),
        counts.get("managed"),
        counts.get("present"),
        protection,
    )


def parse_fast(text: str) -> tuple[Zone, ...] | None:
    """The parse of well-formed text, or None to leave the text to :func:`parse_lines`."""
    if not text.startswith("Node") or not text.endswith("\n") or not _lines.plain(text):
        return None
    zones: list[Zone] = []
    header: tuple[int, str] | None = None
    counts: dict[str, int] = {}
    protection: tuple[int, ...] | None = None
    try:
        # one tuple per wanted line: a header, a field, "pages free" or protection
        for node, zone, odd_header, field, value, inner, unused in _WANTED.findall("\n" + text):
            if field:
                counts.setdefault(field, int(value))
            elif node:
                if header is not None:
                    zones.append(_zone(*header, counts, protection))
                header, counts, protection = (int(node), zone), {}, None
            elif value:
                counts["free"] = int(value)
            elif odd_header or unused:
                return None
            else:
                listed = inner.strip()
                if not (listed.startswith("(") and listed.endswith(")")):
                    return None
                # int() ignores the spaces around each number; an empty item gives up
                protection = tuple(map(int, listed[1:-1].split(",")))
        if header is not None:
            zones.append(_zone(*header, counts, protection))
    except (ValueError, KeyError):  # a bad integer, or a zone without 'pages free'
        return None
    return tuple(zones) if zones else None


def parse_lines(text: str, path: str = "/proc/zoneinfo") -> tuple[Zone, ...]:
    """The line-by-line parser: slower, names the line of every error."""
    _lines.require_text(path, text)
    zones: list[Zone] = []
    header: tuple[int, str, int] | None = None  # node, zone name, line number
    counts: dict[str, int] = {}
    protection: tuple[int, ...] | None = None

    def finish() -> None:
        if header is None:
            return
        node, name, line = header
        if "free" not in counts:
            raise errors.ProcParseError(
                path, f"zone {name} of node {node} (line {line}) has no 'pages free' line"
            )
        zones.append(_zone(node, name, counts, protection))

    for lineno, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("Node"):
            match = _HEADER.match(raw)
            if match is None:
                raise errors.ProcParseError(path, f"line {lineno}: malformed zone header {raw!r}")
            finish()
            header = (int(match.group(1)), match.group(2), lineno)
            counts, protection = {}, None
            continue
        tokens = raw.split()
        if not tokens:
            continue
        if header is None:
            raise errors.ProcParseError(path, f"line {lineno}: data before the first zone header")
        if tokens[0] == "pages" and len(tokens) == 3 and tokens[1] == "free":
            counts["free"] = _lines.to_int(path, lineno, tokens[2])
        elif tokens[0] in _SIMPLE_FIELDS and len(tokens) == 2:
            counts.setdefault(tokens[0], _lines.to_int(path, lineno, tokens[1]))
        elif tokens[0] == "protection:":
            inner = raw.split(":", 1)[1].strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                raise errors.ProcParseError(path, f"line {lineno}: malformed protection {inner!r}")
            protection = tuple(
                _lines.to_int(path, lineno, t.strip()) for t in inner[1:-1].split(",") if t.strip()
            )
    finish()
    if not zones:
        raise errors.ProcParseError(path, "no zones found")
    return tuple(zones)
