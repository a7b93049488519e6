"""``burstguard lab``'s options: per-scenario run counts and workload sizes (``--set``)."""

from __future__ import annotations

import click
import pytest

from burstguard.cli import lab
from burstguard.lab import scenarios


def test_a_scenario_takes_runs_unless_it_names_its_own() -> None:
    chosen = lab._names(("unguarded,guarded,control", "wsf:1,pacing-only:1"), 3)
    assert chosen == {"unguarded": 3, "guarded": 3, "control": 3, "wsf": 1, "pacing-only": 1}


def test_no_scenario_means_unguarded_and_guarded() -> None:
    assert lab._names((), 2) == {"unguarded": 2, "guarded": 2}


@pytest.mark.parametrize("bad", ["wsf:0", "wsf:x", "wsf:51"])
def test_a_bad_run_count_is_a_usage_error(bad: str) -> None:
    with pytest.raises(click.UsageError):
        lab._names((bad,), 3)


def test_set_changes_a_size_for_every_pressured_scenario() -> None:
    sizes = lab._sizes(("grow_mb=128", "container_mb=48"))
    guarded = scenarios.with_sizes(scenarios.SCENARIOS["guarded"], sizes)
    assert (guarded.workload.grow_mb, guarded.workload.container_mb) == (128, 48)
    assert scenarios.kernel_params(guarded)["grow"] == "128"


def test_set_leaves_the_controls_pressure_alone_but_not_its_burst() -> None:
    sizes = lab._sizes(("grow_mb=128", "container_mb=48"))
    control = scenarios.with_sizes(scenarios.SCENARIOS["control"], sizes)
    assert control.workload.grow_mb == 0
    assert control.workload.container_mb == 48


@pytest.mark.parametrize("bad", ["grow_mb", "grow_mb=x", "=3"])
def test_a_malformed_size_is_a_usage_error(bad: str) -> None:
    with pytest.raises(click.UsageError):
        lab._sizes((bad,))


def test_an_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="no_such_size"):
        scenarios.with_sizes(scenarios.SCENARIOS["guarded"], {"no_such_size": 1})


def test_the_burst_alternates_large_and_small_starts_and_quick_does_too() -> None:
    # the guest's labload faults in lab.small MiB for odd-numbered containers (-1: none)
    full = scenarios.kernel_params(scenarios.SCENARIOS["unguarded"])
    quick = scenarios.kernel_params(scenarios.quick(scenarios.SCENARIOS["unguarded"]))
    assert (full["mb"], full["small"]) == ("160", "8")
    assert (quick["mb"], quick["small"]) == ("4", "1")
    same = scenarios.with_sizes(scenarios.SCENARIOS["unguarded"], {"small_mb": -1})
    assert scenarios.kernel_params(same)["small"] == "-1"
