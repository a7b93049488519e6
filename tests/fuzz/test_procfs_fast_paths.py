"""The zoneinfo and vmstat fast paths agree with the line parsers on every generated input.

A fast path may give up (None) and leave the text to the line parser, but when it answers,
the answer is the line parser's; so ``parse`` returns what the line parser returns and raises
the line parser's error, message included, on every garbled input. Inputs: real captures
mangled the ways ``test_procfs_fuzz`` mangles them, the same with tokens made non-numeric or
re-spaced, and arbitrary text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burstguard.procfs import errors, vmstat, zoneinfo
from tests.fuzz import counting
from tests.fuzz.test_procfs_fuzz import capture, mangled

EXAMPLES = 400

PATHS: dict[str, tuple[str, Callable[[str], Any], Callable[[str], Any], Callable[[str], Any]]] = {
    "vmstat": ("vmstat", vmstat.parse_fast, vmstat.parse_lines, vmstat.parse),
    "zoneinfo": ("zoneinfo", zoneinfo.parse_fast, zoneinfo.parse_lines, zoneinfo.parse),
}

SPACING = st.sampled_from([" ", "  ", "\t", "\r", "\x0b", "\x1c", "\u2028", "\u00a0", ""])


@st.composite
def respaced(draw: st.DrawFn, text: str) -> str:
    """The capture with a few spaces or digits swapped for other whitespace or characters."""
    chars = list(text)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(chars) - 1))
        chars[i] = draw(st.one_of(SPACING, st.sampled_from(list('_+-0a"\\\n(),:.e'))))
    return "".join(chars)


def outcome(parse: Callable[[str], Any], text: str) -> tuple[str, Any]:
    try:
        return "result", parse(text)
    except errors.ProcParseError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("target", [*sorted(PATHS), "vmstat with the stdlib json"])
def test_the_fast_path_answers_what_the_line_parser_answers_or_gives_up(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if target == "vmstat with the stdlib json":  # where orjson is not installed
        monkeypatch.setattr(vmstat, "_loads", json.loads)
        target = "vmstat"
    relpath, fast, lines, parse = PATHS[target]
    text = capture(relpath)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(mangled(text), respaced(text), st.text(max_size=400)))
    def run(sample: str) -> None:
        counting.count(f"procfs fast path {target}")
        expected = outcome(lines, sample)
        answer = fast(sample)
        if answer is not None:
            assert expected == ("result", answer)
        assert outcome(parse, sample) == expected

    run()


@pytest.mark.parametrize("target", sorted(PATHS))
def test_the_fast_path_answers_every_real_capture(target: str) -> None:
    relpath, fast, lines, _ = PATHS[target]
    text = capture(relpath)
    assert fast(text) is not None
    assert fast(text) == lines(text)
