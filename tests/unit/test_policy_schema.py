"""The CRD schema (burstguard/api/crds/burstpolicies.yaml) and the Python types agree."""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

import pytest
import yaml

from burstguard.api import policy, units

SECTIONS = [
    pytest.param(policy.PolicySpec, ("spec",), id="spec"),
    pytest.param(policy.PodSelection, ("spec", "pods"), id="pods"),
    pytest.param(policy.NodeSelection, ("spec", "nodes"), id="nodes"),
    pytest.param(policy.Pacing, ("spec", "pacing"), id="pacing"),
    pytest.param(policy.HeadroomRules, ("spec", "headroom"), id="headroom"),
    pytest.param(policy.Preparation, ("spec", "preparation"), id="preparation"),
]

SCHEMA_TYPE_OF_KIND = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "enum": "string",
    "duration": "string",
    "object": "object",
    "selector": "object",
}


def crd() -> dict[str, Any]:
    text = resources.files("burstguard.api").joinpath("crds/burstpolicies.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def schema_at(path: tuple[str, ...]) -> dict[str, Any]:
    node: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in path:
        node = node["properties"][key]
    return node


def schema_default(kind: str, raw: Any) -> Any:
    if kind == "quantity":
        return units.quantity_bytes(raw)
    if kind == "duration":
        return units.duration_seconds(raw)
    if kind == "float":
        return float(raw)
    return raw


@pytest.mark.parametrize(("cls", "path"), SECTIONS)
def test_every_schema_property_has_a_field_and_every_field_a_property(
    cls: type[Any], path: tuple[str, ...]
) -> None:
    keys = {f.metadata["key"] for f in dataclasses.fields(cls)}
    assert keys == set(schema_at(path)["properties"])


@pytest.mark.parametrize(("cls", "path"), SECTIONS)
def test_field_types_match_schema_types(cls: type[Any], path: tuple[str, ...]) -> None:
    props = schema_at(path)["properties"]
    for f in dataclasses.fields(cls):
        prop = props[f.metadata["key"]]
        kind = f.metadata["kind"]
        if kind == "quantity":
            assert prop.get("x-kubernetes-int-or-string") is True, f.name
        else:
            assert prop["type"] == SCHEMA_TYPE_OF_KIND[kind], f.name


@pytest.mark.parametrize(("cls", "path"), SECTIONS)
def test_field_defaults_match_schema_defaults(cls: type[Any], path: tuple[str, ...]) -> None:
    props = schema_at(path)["properties"]
    instance = cls()
    for f in dataclasses.fields(cls):
        prop = props[f.metadata["key"]]
        kind = f.metadata["kind"]
        assert "default" in prop, f"{f.metadata['key']} has no schema default"
        if kind in ("object", "selector"):
            assert prop["default"] == {}
            continue
        assert schema_default(kind, prop["default"]) == getattr(instance, f.name), f.name


def test_mode_enum_matches_the_python_modes() -> None:
    assert tuple(schema_at(("spec", "mode"))["enum"]) == policy.MODES


def test_printer_columns_show_mode_gated_open_closed_and_ready() -> None:
    columns = {c["name"] for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Mode", "Gated", "Open", "Closed", "Ready"} <= columns


def test_status_is_a_subresource_and_the_policy_is_cluster_scoped() -> None:
    doc = crd()
    assert doc["spec"]["scope"] == "Cluster"
    assert doc["spec"]["versions"][0]["subresources"] == {"status": {}}
