"""Parsers for the two unit-bearing string forms a BurstPolicy uses: quantities and durations.

Quantities follow Kubernetes resource notation (``256Mi``, ``1G``, ``512``) so that policy
values read like pod requests; durations follow Go's ``time.ParseDuration`` (``20ms``,
``1m30s``) because the CRD's CEL rules call ``duration()`` on the same strings, and the two
parsers must agree. Both are pure and raise :class:`UnitError` with the offending text.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final


class UnitError(ValueError):
    """A quantity or duration string that cannot be parsed."""


_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: Final = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY_RE: Final = re.compile(
    r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)
_DURATION_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS_S: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity (``256Mi``, ``1.5G``, ``100m``, ``42``) to its exact value."""
    if isinstance(value, bool):
        raise UnitError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY_RE.match(value.strip())
    if match is None:
        raise UnitError(f"not a quantity: {value!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise UnitError(f"not a quantity: {value!r}") from exc
    scale = Decimal(_BINARY[suffix]) if suffix in _BINARY else _DECIMAL[suffix]
    return base * scale


def quantity_bytes(value: str | int | float) -> int:
    """Parse a memory quantity to whole bytes (rounded up, as the kubelet does)."""
    exact = quantity(value)
    whole = int(exact.to_integral_value(rounding="ROUND_CEILING"))
    if whole < 0:
        raise UnitError(f"memory quantity must not be negative: {value!r}")
    return whole


def cpu_cores(value: str | int | float) -> float:
    """Parse a CPU quantity (``2``, ``1500m``) to cores."""
    return float(quantity(value))


def duration_seconds(value: str) -> float:
    """Parse a Go duration (``20ms``, ``1m30s``) to seconds."""
    text = value.strip()
    if not text:
        raise UnitError("empty duration")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART_RE.finditer(text):
        if match.start() != pos:
            raise UnitError(f"not a duration: {value!r}")
        total += float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise UnitError(f"not a duration: {value!r}")
    return total
