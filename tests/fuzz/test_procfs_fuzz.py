"""Every procfs parser, fed generated text: a result or ``ProcParseError``, nothing else.

The agent reads /proc on every node every second; a parser that raised anything but its own
error (IndexError, ValueError, ...) would take the sampler down instead of marking one signal
unavailable. Inputs: real captures with lines dropped, duplicated, cut or tokens replaced,
and arbitrary unicode text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burstguard.procfs import buddyinfo, errors, meminfo, pressure, scalars, vmstat, zoneinfo
from tests.fuzz import counting

EXAMPLES = 300
CAPTURES = Path(__file__).parents[1] / "fixtures" / "proc"

PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "meminfo": ("meminfo", meminfo.parse),
    "vmstat": ("vmstat", vmstat.parse),
    "zoneinfo": ("zoneinfo", zoneinfo.parse),
    "buddyinfo": ("buddyinfo", buddyinfo.parse),
    "pressure": ("pressure/memory", pressure.parse),
    "osrelease": ("sys/kernel/osrelease", scalars.parse_release),
    "int scalar": ("sys/vm/min_free_kbytes", lambda t: scalars.parse_int(t, "/proc/sys/x")),
}


def capture(relpath: str) -> str:
    for directory in sorted(CAPTURES.iterdir()):
        path = directory / relpath
        if path.is_file():
            return path.read_text()
    return "0\n"


TOKEN = st.one_of(
    st.sampled_from(["", "0", "-1", "nan", "inf", "1e309", "18446744073709551616", ":", "kB"]),
    st.text(max_size=12),
)


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    """The capture with a few lines changed the ways a bad mount or a new kernel could."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "dup", "cut", "token", "join"]))
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif how == "token":
            words = lines[i].split()
            if words:
                words[draw(st.integers(0, len(words) - 1))] = draw(TOKEN)
            lines[i] = " ".join(words)
        else:
            lines[i : i + 2] = [" ".join(lines[i : i + 2])]
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\x00"]))


@pytest.mark.parametrize("target", sorted(PARSERS))
def test_a_procfs_parser_returns_a_result_or_its_own_parse_error(target: str) -> None:
    relpath, parse = PARSERS[target]
    text = capture(relpath)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(mangled(text), st.text(max_size=400)))
    def run(sample: str) -> None:
        counting.count(f"procfs {target}")
        with contextlib.suppress(errors.ProcParseError):
            parse(sample)

    run()
