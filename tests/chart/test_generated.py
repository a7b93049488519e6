"""Generated deploy files agree with their sources (STYLE.md item 13: CI fails on drift)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.chart import generating, render, tools

HINT = "generated files are stale: run `make chart manifests` and commit them with the change"


class TestValuesSchema:
    def test_committed_values_schema_is_the_one_generated_from_values_yaml(self) -> None:
        stale = generating.drift({generating.VALUES_SCHEMA: generating.values_schema_text()})
        assert stale == [], HINT

    def test_a_value_without_a_comment_is_refused(self) -> None:
        text = "# -- documented\na: 1\nb: 2\n"
        with pytest.raises(generating.ValuesError, match=r"\bb: no `# --` comment"):
            generating.values_schema(text)

    def test_a_map_with_documented_keys_is_closed_and_a_bare_map_is_free_form(self) -> None:
        text = (
            "section:\n"
            "  # -- a number\n"
            '  # @schema {"minimum": 1}\n'
            "  n: 3\n"
            "  # -- anything goes\n"
            "  labels:\n"
            "    free: form\n"
        )
        section = generating.values_schema(text)["properties"]["section"]
        assert section["additionalProperties"] is False
        assert section["properties"]["n"] == {
            "type": "integer",
            "description": "a number",
            "minimum": 1,
        }
        assert section["properties"]["labels"] == {"type": "object", "description": "anything goes"}

    def test_a_parent_charts_global_values_are_allowed(self) -> None:
        properties = generating.values_schema("# -- x\nx: 1\n")["properties"]
        assert properties["global"]["type"] == "object"

    def test_a_comment_may_run_over_several_lines(self) -> None:
        text = "# -- first line\n# second line\nkey: x\n"
        described = generating.values_schema(text)["properties"]["key"]["description"]
        assert described == "first line second line"


class TestCopies:
    def test_chart_crds_are_copies_of_the_package_crds(self) -> None:
        assert generating.drift(generating.crd_copies()) == [], HINT

    def test_the_chart_has_a_crd_for_every_package_crd_and_no_other(self) -> None:
        chart = sorted(p.name for p in generating.CRD_COPY.glob("*.yaml"))
        package = sorted(p.name for p in generating.CRD_SOURCE.glob("*.yaml"))
        assert chart == package

    def test_manifests_are_what_the_chart_renders(self, chart_tools: tools.Tools) -> None:
        assert generating.drift(generating.manifests(chart_tools.helm)) == [], HINT

    def test_kustomization_lists_every_generated_manifest(self) -> None:
        kustomization = yaml.safe_load((generating.MANIFESTS / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"])
        on_disk = {
            str(p.relative_to(generating.MANIFESTS))
            for p in generating.MANIFESTS.rglob("*.yaml")
            if p.name not in {"kustomization.yaml", "values.yaml"}
        }
        assert listed == on_disk


class TestToolVersions:
    @pytest.mark.parametrize(
        ("variable", "pinned"),
        [
            pytest.param("HELM_VERSION", tools.HELM_VERSION, id="helm"),
            pytest.param("KUBECONFORM_VERSION", tools.KUBECONFORM_VERSION, id="kubeconform"),
            pytest.param(
                "PROMETHEUS_OPERATOR_VERSION",
                tools.PROMETHEUS_OPERATOR_VERSION,
                id="prometheus-operator",
            ),
            pytest.param("CERT_MANAGER_VERSION", tools.CERT_MANAGER_VERSION, id="cert-manager"),
        ],
    )
    def test_setup_script_builds_the_version_the_tests_look_for(
        self, variable: str, pinned: str
    ) -> None:
        script = tools.SETUP_SCRIPT.read_text()
        match = re.search(rf'^{variable}="\$\{{{variable}:-(\S+)\}}"$', script, re.MULTILINE)
        assert match is not None, f"{variable} not pinned in {tools.SETUP_SCRIPT.name}"
        assert match.group(1) == pinned


DEPLOY_AGENT = tools.REPO / "deploy" / "agent"


def permissions(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a ClusterRole grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


class TestAgentPlainCopies:
    """deploy/agent/ holds plain copies the agent's own cluster tests apply; the chart is the
    source of deploy truth, so the copies must say the same."""

    def test_the_plain_node_policy_has_the_charts_rules(self, chart_tools: tools.Tools) -> None:
        plain = render.pick(
            generating.documents((DEPLOY_AGENT / "node-policy.yaml").read_text()),
            "ValidatingAdmissionPolicy",
        )
        chart = render.pick(
            render.objects(), "ValidatingAdmissionPolicy", "burstguard-agent-own-node"
        )
        for key in ("failurePolicy", "matchConstraints", "variables", "validations"):
            assert plain["spec"][key] == chart["spec"][key], key

    def test_the_plain_agent_rbac_grants_what_the_chart_grants(
        self, chart_tools: tools.Tools
    ) -> None:
        plain = render.pick(
            generating.documents((DEPLOY_AGENT / "rbac.yaml").read_text()), "ClusterRole"
        )
        chart = render.pick(render.objects(), "ClusterRole", "burstguard-agent")
        assert permissions(plain) == permissions(chart)
        plain_events = render.pick(
            generating.documents((DEPLOY_AGENT / "rbac.yaml").read_text()), "Role"
        )
        chart_events = render.pick(render.objects(), "Role", "burstguard-agent-events")
        assert permissions(plain_events) == permissions(chart_events)
        assert plain_events["metadata"]["namespace"] == chart_events["metadata"]["namespace"]
