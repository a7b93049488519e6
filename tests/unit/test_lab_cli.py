"""``burstguard lab``'s scenario list: a per-scenario run count for the quiet-window split."""

from __future__ import annotations

import click
import pytest

from burstguard.cli import lab


def test_a_scenario_takes_runs_unless_it_names_its_own() -> None:
    chosen = lab._names(("unguarded,guarded,control", "wsf:1,pacing-only:1"), 3)
    assert chosen == {"unguarded": 3, "guarded": 3, "control": 3, "wsf": 1, "pacing-only": 1}


def test_no_scenario_means_unguarded_and_guarded() -> None:
    assert lab._names((), 2) == {"unguarded": 2, "guarded": 2}


@pytest.mark.parametrize("bad", ["wsf:0", "wsf:x", "wsf:51"])
def test_a_bad_run_count_is_a_usage_error(bad: str) -> None:
    with pytest.raises(click.UsageError):
        lab._names((bad,), 3)
