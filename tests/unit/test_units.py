"""Quantity and duration parsing."""

from __future__ import annotations

import pytest

from burstguard.api import units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("256Mi", 256 * 2**20, id="binary"),
        pytest.param("1G", 10**9, id="decimal"),
        pytest.param("1.5Gi", 3 * 2**29, id="fraction"),
        pytest.param("512", 512, id="plain"),
        pytest.param(1024, 1024, id="integer"),
        pytest.param("1500m", 2, id="milli-rounds-up"),
    ],
)
def test_memory_quantities_parse_to_bytes(text: str | int, expected: int) -> None:
    assert units.quantity_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("20ms", 0.02, id="ms"),
        pytest.param("1m30s", 90.0, id="compound"),
        pytest.param("2h", 7200.0, id="hours"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("1.5s", 1.5, id="fraction"),
    ],
)
def test_go_durations_parse_to_seconds(text: str, expected: float) -> None:
    assert units.duration_seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "5", "s", "5 s", "5sec", "1m-3s"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(units.UnitError):
        units.duration_seconds(text)


@pytest.mark.parametrize("text", ["", "Mi", "12Q", "1..2"])
def test_malformed_quantities_are_rejected(text: str) -> None:
    with pytest.raises(units.UnitError):
        units.quantity_bytes(text)


def test_cpu_quantities_parse_to_cores() -> None:
    assert units.cpu_cores("1500m") == 1.5
