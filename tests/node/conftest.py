"""Node-layer fixtures: these tests need root, real /proc, tracefs and bpftrace.

Every test under tests/node/ gets the ``node`` marker. A missing capability skips with the
reason outside CI and fails under CI (``CI=true``), where ``make setup`` must provide it.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

NODE_TESTS = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/node/ with ``node``."""
    for item in items:
        if item.path.is_relative_to(NODE_TESTS):
            item.add_marker(pytest.mark.node)


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must provide it: make setup)")
    pytest.skip(reason)


@pytest.fixture
def root() -> None:
    """The test needs uid 0."""
    if os.geteuid() != 0:
        missing("needs root")


@pytest.fixture
def bpftrace(root: None) -> str:
    """Path of bpftrace, with tracefs mounted."""
    path = shutil.which("bpftrace")
    if path is None:
        missing("bpftrace not installed (apt-get install bpftrace)")
    if not os.path.isdir("/sys/kernel/tracing/events"):
        missing("tracefs not mounted at /sys/kernel/tracing (.ci/setup.d/30-tracefs.sh)")
    assert path is not None
    return path
