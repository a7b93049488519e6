"""Errors from reading and parsing /proc, kept apart so callers can say which went wrong.

A read error (file missing, permission, oversized) means the signal is unavailable on this
node; a parse error means the kernel (or a bad mount) gave text we cannot trust. Both carry
the path, because the first thing an operator asks is "which file?".
"""

from __future__ import annotations


class ProcError(Exception):
    """Base class: something about one /proc file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ProcReadError(ProcError):
    """The file could not be read (absent, no permission, larger than the size cap)."""


class ProcParseError(ProcError):
    """The file was read but its text is not what the kernel writes (garbled, truncated)."""
