"""Parse one-value files: ``sys/kernel/osrelease`` and ``sys/vm/*`` integers."""

from __future__ import annotations

from burstguard.procfs import _lines, errors


def parse_release(text: str, path: str = "/proc/sys/kernel/osrelease") -> str:
    """The kernel release string (``6.1.0-56-cloud-amd64``)."""
    _lines.require_text(path, text)
    release = text.strip()
    if not release or len(release.split()) != 1 or not release[0].isdigit():
        raise errors.ProcParseError(path, f"not a kernel release: {release!r}")
    return release


def parse_int(text: str, path: str) -> int:
    """A file holding one integer (``watermark_scale_factor``, ``min_free_kbytes``)."""
    _lines.require_text(path, text)
    tokens = text.split()
    if len(tokens) != 1:
        raise errors.ProcParseError(path, f"expected one integer, got {text.strip()!r}")
    return _lines.to_int(path, 1, tokens[0])
