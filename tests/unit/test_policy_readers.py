"""Every BurstPolicy spec field has a reader: a setting nobody reads does not do what its doc
says, so it must be wired or removed.

A field is read when some module other than ``api/policy.py`` takes it from its section:
``<expr>.<section>.<field>``, or ``<name>.<field>`` where ``<name>`` was bound from
``<expr>.<section>`` or is a parameter annotated with the section's type. Properties of the
spec (``enforcing``, ``close_below_bytes``) read their fields on behalf of their readers.
A plain name match would not do: the agent's own ``config.reserve_bytes`` is not the policy's.
Top-level fields (``mode``) are matched by name only.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

import burstguard
from burstguard.api import policy

PACKAGE = pathlib.Path(burstguard.__file__).parent
SECTION_TYPES = {
    "pods": policy.PodSelection,
    "nodes": policy.NodeSelection,
    "pacing": policy.Pacing,
    "headroom": policy.HeadroomRules,
    "preparation": policy.Preparation,
}


def spec_fields() -> list[tuple[str, str]]:
    """(section, field) for every leaf of the spec; section "" for top-level fields."""
    out: list[tuple[str, str]] = []
    for top in dataclasses.fields(policy.PolicySpec):
        if top.name in SECTION_TYPES:
            out += [(top.name, f.name) for f in dataclasses.fields(SECTION_TYPES[top.name])]
        else:
            out.append(("", top.name))
    return out


def _reads(tree: ast.AST) -> set[tuple[str, str]]:
    """(section, field) pairs read in one module."""
    bound: dict[str, str] = {}
    type_names = {cls.__name__: section for section, cls in SECTION_TYPES.items()}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr in SECTION_TYPES
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = node.value.attr
        if isinstance(node, ast.arg) and node.annotation is not None:
            text = ast.unparse(node.annotation).split(".")[-1]
            if text in type_names:
                bound[node.arg] = type_names[text]
    reads: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        inner = node.value
        if isinstance(inner, ast.Attribute) and inner.attr in SECTION_TYPES:
            reads.add((inner.attr, node.attr))
        elif isinstance(inner, ast.Name) and inner.id in bound:
            reads.add((bound[inner.id], node.attr))
        reads.add(("", node.attr))
    return reads


def _all_reads() -> set[tuple[str, str]]:
    reads: set[tuple[str, str]] = set()
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "api" / "policy.py":
            continue
        reads |= _reads(ast.parse(path.read_text(), str(path)))
    # Spec properties read their fields for whoever reads the property.
    if ("", "enforcing") in reads:
        reads.add(("", "mode"))
    if ("", "close_below_bytes") in reads:
        reads |= {("headroom", "close_below_bytes"), ("pacing", "pod_startup_memory_bytes")}
    return reads


READS = _all_reads()


@pytest.mark.parametrize(
    ("section", "name"), [pytest.param(s, n, id=f"{s}.{n}" if s else n) for s, n in spec_fields()]
)
def test_every_spec_field_is_read_outside_its_parser(section: str, name: str) -> None:
    assert (section, name) in READS, f"spec.{section}.{name} has no reader: wire it or remove it"


def test_the_reader_scan_does_not_count_the_agents_own_reserve_setting() -> None:
    tree = ast.parse("def f(config):\n    return config.reserve_bytes\n")
    assert ("headroom", "reserve_bytes") not in _reads(tree)
