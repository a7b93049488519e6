"""Parse /proc/zoneinfo into one record per (NUMA node, zone).

The watermarks (``min``, ``low``, ``high``) are what kswapd and direct reclaim act on
(Documentation/admin-guide/sysctl/vm.rst, ``watermark_scale_factor``): kswapd wakes when a
zone's free pages fall below ``low`` and sleeps again above ``high``; allocations below
``min`` enter direct reclaim. Values are in pages, as the kernel prints them.

An absent line is ``None``, never 0 (prometheus/procfs ``zoneinfo.go`` convention): older
kernels lack ``managed``/``promo`` and a 0 would read as "no memory". A zone without its
``pages free`` line means the read was cut short, which is a parse error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from burstguard.procfs import _lines, errors

_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)\s*$")
_SIMPLE_FIELDS = ("min", "low", "high", "spanned", "present", "managed", "boost", "promo")


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
    zones: list[Zone] = []
    header: tuple[int, str, int] | None = None  # node, zone name, line number
    counts: dict[str, int] = {}
    protection: tuple[int, ...] | None = None

    def finish() -> None:
        if header is None:
            return
        node, name, line = header
        if "free_pages" not in counts:
            raise errors.ProcParseError(
                path, f"zone {name} of node {node} (line {line}) has no 'pages free' line"
            )
        zones.append(
            Zone(
                node=node,
                name=name,
                free_pages=counts["free_pages"],
                min_pages=counts.get("min_pages"),
                low_pages=counts.get("low_pages"),
                high_pages=counts.get("high_pages"),
                managed_pages=counts.get("managed_pages"),
                present_pages=counts.get("present_pages"),
                protection=protection,
            )
        )

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
            counts["free_pages"] = _lines.to_int(path, lineno, tokens[2])
        elif tokens[0] in _SIMPLE_FIELDS and len(tokens) == 2:
            counts.setdefault(f"{tokens[0]}_pages", _lines.to_int(path, lineno, tokens[1]))
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
