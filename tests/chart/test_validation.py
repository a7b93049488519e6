"""The chart passes helm lint and kubeconform -strict for every CI values file.

kubeconform runs offline on schemas generated from the control plane's own OpenAPI document,
the package's CRD and the CRDs of the optional kinds (see ``generating``), so an unknown field
anywhere in a rendered object fails the check.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.chart import generating, tools
from tests.chart.conftest import CI_VALUES

CI_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]


def kubeconform(binary: Path, schemas: Path, text: str) -> dict[str, object]:
    """kubeconform -strict on a YAML stream; returns its JSON summary and resources."""
    done = subprocess.run(
        [
            str(binary),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-schema-location",
            str(schemas / generating.SCHEMA_LOCATION),
            "-",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report: dict[str, object] = json.loads(done.stdout or "{}")
    report["returncode"] = done.returncode
    report["stderr"] = done.stderr
    return report


def invalid(report: dict[str, object]) -> list[str]:
    """What kubeconform did not find valid (invalid, errors, missing schemas), one line each."""
    resources = report.get("resources") or []
    assert isinstance(resources, list)
    return [
        f"{r.get('kind')}/{r.get('name')}: {r.get('msg')}"
        for r in resources
        if r.get("status") != "statusValid"
    ]


class TestHelmLint:
    @pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
    def test_chart_lints_clean(self, chart_tools: tools.Tools, values: Path) -> None:
        done = subprocess.run(
            [str(chart_tools.helm), "lint", "--strict", str(generating.CHART), "-f", str(values)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_a_misspelt_value_is_refused_by_the_values_schema(
        self, chart_tools: tools.Tools
    ) -> None:
        with pytest.raises(generating.HelmError) as failed:
            generating.helm_template(chart_tools.helm, set_values={"operator.replica": "2"})
        assert "additional properties 'replica' not allowed" in failed.value.stderr

    def test_a_value_out_of_range_is_refused_by_the_values_schema(
        self, chart_tools: tools.Tools
    ) -> None:
        with pytest.raises(generating.HelmError) as failed:
            generating.helm_template(chart_tools.helm, set_values={"webhook.timeoutSeconds": 60})
        assert "timeoutSeconds" in failed.value.stderr

    def test_kubernetes_older_than_1_30_is_refused(self, chart_tools: tools.Tools) -> None:
        done = subprocess.run(
            [
                str(chart_tools.helm),
                "template",
                "bg",
                str(generating.CHART),
                "--kube-version",
                "1.29.9",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode != 0
        assert "kubeVersion" in done.stderr or "incompatible" in done.stderr


class TestKubeconform:
    @pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
    def test_every_rendered_object_is_valid_under_strict_schemas(
        self, chart_tools: tools.Tools, renders: dict[str, str], schema_dir: Path, values: Path
    ) -> None:
        report = kubeconform(chart_tools.kubeconform, schema_dir, renders[values.name])
        assert invalid(report) == []
        assert report["returncode"] == 0, report["stderr"]

    def test_generated_manifests_are_valid_under_strict_schemas(
        self, chart_tools: tools.Tools, schema_dir: Path
    ) -> None:
        text = "\n---\n".join(
            (generating.MANIFESTS / name).read_text()
            for name in ("namespace.yaml", "burstguard.yaml")
        )
        report = kubeconform(chart_tools.kubeconform, schema_dir, text)
        assert invalid(report) == []

    def test_an_unknown_field_fails_the_check(
        self, chart_tools: tools.Tools, renders: dict[str, str], schema_dir: Path
    ) -> None:
        broken = renders["default-values.yaml"].replace(
            "strategy:\n    type: RollingUpdate",
            "strategy:\n    type: RollingUpdate\n    maxSurge: 1",
            1,
        )
        assert broken != renders["default-values.yaml"]
        report = kubeconform(chart_tools.kubeconform, schema_dir, broken)
        assert any("maxSurge" in line for line in invalid(report)), report

    def test_an_invalid_burstpolicy_fails_the_check(
        self, chart_tools: tools.Tools, schema_dir: Path
    ) -> None:
        policy = (
            "apiVersion: burstguard.io/v1alpha1\nkind: BurstPolicy\n"
            "metadata: {name: p}\nspec: {mode: Sometimes}\n"
        )
        report = kubeconform(chart_tools.kubeconform, schema_dir, policy)
        assert len(invalid(report)) == 1, report
