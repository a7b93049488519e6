"""The ``image`` fixture: the built image archive (see images.py); the layer's tests get the
``image`` marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.image import images


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.image)


@pytest.fixture(scope="session")
def image() -> images.Image:
    reason = images.missing_capability()
    if reason:
        pytest.skip(reason)
    return images.build()


@pytest.fixture(scope="session")
def rootfs(image: images.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return images.extract_rootfs(image, tmp_path_factory.mktemp("rootfs"))
