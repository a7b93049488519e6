"""Small helpers shared by the parsers: integer fields with the path and line in errors."""

from __future__ import annotations

from burstguard.procfs import errors


def to_int(path: str, lineno: int, token: str) -> int:
    """Parse a decimal integer or raise a ProcParseError naming the line."""
    try:
        return int(token)
    except ValueError:
        raise errors.ProcParseError(path, f"line {lineno}: {token!r} is not an integer") from None


def to_float(path: str, lineno: int, token: str) -> float:
    """Parse a decimal number or raise a ProcParseError naming the line."""
    try:
        return float(token)
    except ValueError:
        raise errors.ProcParseError(path, f"line {lineno}: {token!r} is not a number") from None


def require_text(path: str, text: str) -> None:
    """Empty text is a truncated read, not an empty table."""
    if not text.strip():
        raise errors.ProcParseError(path, "file is empty")
    if not text.endswith("\n"):
        raise errors.ProcParseError(path, "last line is cut off (truncated read?)")
