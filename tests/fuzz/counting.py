"""How many examples each fuzz target ran in this pytest process (printed at the end).

hypothesis does not report example counts itself; each target bumps its counter once per
example, and ``tests/conftest.py`` prints the counts in the terminal summary, so a run says
what it tried, not only that it passed.
"""

from __future__ import annotations

COUNTS: dict[str, int] = {}


def count(target: str) -> None:
    COUNTS[target] = COUNTS.get(target, 0) + 1


def summary() -> list[str]:
    return [f"{target}: {n} examples" for target, n in sorted(COUNTS.items())]
