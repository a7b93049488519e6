"""The incident lab's guest kernel is pinned; another one only by an explicit choice."""

from __future__ import annotations

import pytest

from burstguard.lab import building


def test_without_a_choice_the_pinned_kernel_is_used() -> None:
    assert building.kernel_choice({}) == (building.KERNEL_PACKAGE, building.KERNEL_VERSION, True)


def test_the_pinned_kernel_is_a_6_1_cloud_kernel() -> None:
    release = building.KERNEL_PACKAGE.removeprefix("linux-image-")
    assert release.startswith(building.KERNEL_SERIES)
    assert release.endswith("-cloud-amd64")


def test_another_kernel_is_recorded_as_not_pinned() -> None:
    chosen = building.kernel_choice(
        {building.KERNEL_ENV: "linux-image-6.1.0-56-cloud-amd64=6.1.192-2"}
    )
    assert chosen == ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", False)


@pytest.mark.parametrize(
    "choice",
    [
        pytest.param("linux-image-6.1.0-56-cloud-amd64", id="no-version"),
        pytest.param("linux-image-6.12.0-1-cloud-amd64=6.12.1-1", id="a-fixed-kernel"),
        pytest.param("bash=5.2", id="not-a-kernel"),
    ],
)
def test_a_malformed_or_fixed_kernel_choice_is_refused(choice: str) -> None:
    with pytest.raises(building.BuildError, match=building.KERNEL_ENV):
        building.kernel_choice({building.KERNEL_ENV: choice})
