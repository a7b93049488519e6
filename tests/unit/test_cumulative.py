"""Windows taken as differences of cumulative readings lose no event at a boundary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from burstguard.core import cumulative


def test_the_increase_is_the_growth_per_key_and_keys_that_did_not_grow_are_left_out() -> None:
    assert cumulative.increase({"a": 3, "b": 5}, {"a": 7, "b": 5, "c": 1}) == {"a": 4, "c": 1}


def test_a_count_that_went_down_is_a_restart_and_counts_in_full() -> None:
    assert cumulative.increase({"a": 10}, {"a": 4}) == {"a": 4}


@given(
    st.lists(
        st.one_of(st.sampled_from(["x", "y", "z"]), st.none()),
        max_size=200,
    )
)
def test_every_event_is_counted_in_exactly_one_window_wherever_the_readings_fall(
    stream: list[str | None],
) -> None:
    # Events (a key) and readings (None) interleave in any order, as an event can land
    # between any two instructions of the print loop; the windows must add up to the events.
    counts: dict[str, int] = {}
    previous: dict[str, int] = {}
    windows: list[dict[str, int]] = []
    for item in [*stream, None]:
        if item is None:
            reading = dict(counts)
            windows.append(cumulative.increase(previous, reading))
            previous = reading
        else:
            counts[item] = counts.get(item, 0) + 1
    summed: dict[str, int] = {}
    for window in windows:
        for key, n in window.items():
            summed[key] = summed.get(key, 0) + n
    assert summed == {k: v for k, v in counts.items() if v}
