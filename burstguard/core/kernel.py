"""Is this kernel exposed to the ``shrinker_rwsem`` mount stall?

Before Linux 6.7, slab shrinking (kswapd, direct reclaim) took ``shrinker_rwsem`` for read
while every superblock allocation (overlayfs mount) and teardown took it for write
(``alloc_super -> prealloc_shrinker``), so one long reclaim pass stalled every container
mount on the node (background/incident.txt). 6.7 made shrinker lookup lockless (SRCU) and
turned the remaining lock into ``shrinker_mutex`` (mm/shrinker.c), which reclaim no longer
takes.

The running kernel's symbols decide when /proc/kallsyms is readable, because vendor kernels
backport: ``shrinker_alloc`` (the 6.7 API that came with the lockless lookup) means fixed;
``prealloc_shrinker`` (the pre-6.7 API) or the ``shrinker_rwsem`` data symbol means exposed.
Absence of ``shrinker_rwsem`` alone proves nothing: data symbols are listed only with
CONFIG_KALLSYMS_ALL. Otherwise the release number decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIXED_IN = (6, 7)
"""First mainline release without the reclaim-side ``shrinker_rwsem``."""

_RELEASE = re.compile(r"^(\d+)\.(\d+)")


@dataclass(frozen=True)
class Exposure:
    """Verdict on the shrinker_rwsem stall."""

    exposed: bool | None
    """True: exposed; False: not; None: cannot tell."""
    reason: str
    """Why, in words an operator can check."""


def parse_release(release: str) -> tuple[int, int] | None:
    """``6.1.0-56-cloud-amd64`` -> (6, 1); None when it does not start with major.minor."""
    match = _RELEASE.match(release.strip())
    return None if match is None else (int(match.group(1)), int(match.group(2)))


EVIDENCE_SYMBOLS = frozenset({"shrinker_rwsem", "prealloc_shrinker", "shrinker_alloc"})
"""Symbols looked up in /proc/kallsyms for :func:`shrinker_exposure`."""


def shrinker_exposure(release: str, symbols: frozenset[str] | None = None) -> Exposure:
    """Decide exposure from kallsyms evidence (which EVIDENCE_SYMBOLS exist) or the release."""
    if symbols is not None:
        if "shrinker_alloc" in symbols:
            return Exposure(False, f"kernel {release} has shrinker_alloc (lockless shrinker, 6.7+)")
        if "shrinker_rwsem" in symbols or "prealloc_shrinker" in symbols:
            found = "shrinker_rwsem" if "shrinker_rwsem" in symbols else "prealloc_shrinker"
            return Exposure(True, f"kernel {release} has {found} (global shrinker lock)")
    version = parse_release(release)
    if version is None:
        return Exposure(None, f"cannot parse kernel release {release!r}")
    if version < FIXED_IN:
        return Exposure(True, f"kernel {release} is older than 6.7 (shrinker_rwsem in reclaim)")
    return Exposure(False, f"kernel {release} is 6.7 or newer (lockless shrinker lookup)")
