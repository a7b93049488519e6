"""BurstPolicy specs generated from the CRD's own schema, through the policy parser/validator.

The operator parses every policy the apiserver accepted, and also ones an older CRD let in,
so ``policy.parse_spec`` must return a spec and a list of field errors for anything: it may
never raise. Two generators, both read from ``burstguard/api/crds/burstpolicies.yaml``:

- schema-conforming specs (types, enums, bounds and patterns as the schema states them): the
  parser agrees with the schema's types, so the only errors left are those the validator adds;
- the same with any field swapped for a JSON value of another type (an object stored before a
  schema change, or a client that bypassed validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burstguard.api import policy
from tests.fuzz import counting

EXAMPLES = 500
CRD = Path(policy.__file__).parent / "crds" / "burstpolicies.yaml"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def strategy(schema: dict[str, Any], *, wrong_types: bool) -> st.SearchStrategy[Any]:
    """Values the schema allows; with ``wrong_types`` any of them may be a JSON value instead."""
    right = _conforming(schema, wrong_types=wrong_types)
    return st.one_of(right, JSON) if wrong_types else right


def _conforming(schema: dict[str, Any], *, wrong_types: bool) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("x-kubernetes-int-or-string"):
        pattern = schema.get("pattern", r"^[0-9]+$")
        return st.integers(0, 2**40) | st.from_regex(pattern, fullmatch=True)
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(max_size=20)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(
            None if low is None else int(low) + 1, None if high is None else int(high)
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(strategy(schema.get("items", {}), wrong_types=wrong_types), max_size=3)
    if kind == "object":
        props = schema.get("properties")
        if props:
            return st.fixed_dictionaries(
                {},
                optional={k: strategy(v, wrong_types=wrong_types) for k, v in props.items()},
            )
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return st.dictionaries(
                st.text(max_size=12), strategy(extra, wrong_types=wrong_types), max_size=3
            )
        return st.dictionaries(st.text(max_size=6), JSON, max_size=2)
    return JSON


SCHEMA = spec_schema()


def parse(raw: Any) -> tuple[policy.PolicySpec, tuple[policy.FieldError, ...]]:
    spec, errors = policy.parse_spec(raw)
    assert isinstance(spec, policy.PolicySpec)
    for error in errors:
        assert isinstance(error, policy.FieldError) and error.path.startswith("spec")
    return spec, errors


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(raw=strategy(SCHEMA, wrong_types=False))
def test_a_spec_the_crd_schema_accepts_parses_without_type_errors(raw: dict[str, Any]) -> None:
    counting.count("policy spec (schema)")
    _, errors = parse(raw)
    # The parser reads every type the schema allows: what is left is the validator's say.
    for error in errors:
        assert ", got " not in error.message, error  # a type the parser did not expect
        assert error.message not in ("must be an object", "unknown field"), error


@FUZZ
@given(raw=strategy(SCHEMA, wrong_types=True) | JSON)
def test_a_spec_of_any_shape_is_parsed_into_field_errors_never_an_exception(raw: Any) -> None:
    counting.count("policy spec (any type)")
    parse(raw)
    policy.parse({"metadata": {"name": "fuzz", "generation": 1}, "spec": raw})
