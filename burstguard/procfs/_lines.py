"""Small helpers shared by the parsers: integer fields with the path and line in errors."""

from __future__ import annotations

from typing import Final

from burstguard.procfs import errors

_ODD_WHITESPACE: Final = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def plain(text: str) -> bool:
    """ASCII whose only whitespace is space and newline, as the kernel writes these files.

    The fast parsers run only on such text: there ``str.split``, ``splitlines`` and a
    multi-line regex agree on what a line and a token are, so a fast parse gives what the
    line parser gives. Anything else goes to the line parser (and its error messages).
    """
    return text.isascii() and not any(c in text for c in _ODD_WHITESPACE)


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
