"""Fixtures of the chart layer: the tools, every CI values file rendered once, schemas.

Every test under tests/chart/ gets the ``chart`` marker; tests that also apply objects to the
real control plane ask for the ``cluster`` fixture and carry the ``cluster`` marker too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart import generating, render, tools

CHART_TESTS = Path(__file__).parent
CI_VALUES = sorted((generating.CHART / "ci").glob("*-values.yaml"))
"""The values files CI renders the chart with (charts/burstguard/ci/*-values.yaml)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/chart/ with ``chart``."""
    for item in items:
        if item.path.is_relative_to(CHART_TESTS):
            item.add_marker(pytest.mark.chart)


@pytest.fixture(scope="session")
def chart_tools() -> tools.Tools:
    """helm, kubeconform and the schema sources; fails under CI and skips elsewhere if absent."""
    return render.require_tools()


@pytest.fixture(scope="session")
def renders(chart_tools: tools.Tools) -> dict[str, str]:
    """``helm template`` output (hooks and CRDs included) for each CI values file, by file."""
    return {
        path.name: generating.helm_template(
            chart_tools.helm, values_files=[path], namespace="burstguard-system", crds=True
        )
        for path in CI_VALUES
    }


@pytest.fixture(scope="session")
def schema_dir(
    chart_tools: tools.Tools, renders: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """kubeconform schemas for every kind the renders and manifests/ contain."""
    directory = tmp_path_factory.mktemp("kubeconform-schemas")
    wanted: set[tuple[str, str]] = set()
    for text in renders.values():
        wanted |= generating.kinds(generating.documents(text))
    for manifest in generating.MANIFESTS.glob("*.yaml"):
        if manifest.name not in {"kustomization.yaml", "values.yaml"}:
            wanted |= generating.kinds(generating.documents(manifest.read_text()))
    generating.write_schemas(
        directory,
        chart_tools.swagger,
        [*sorted(generating.CRD_SOURCE.glob("*.yaml")), *chart_tools.extra_crds],
        wanted,
    )
    yield directory
