"""Parsing and validating BurstPolicy objects."""

from __future__ import annotations

from typing import Any

import pytest

from burstguard.api import policy


def policy_object(spec: dict[str, Any] | None = None, name: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "burstguard.io/v1alpha1",
        "kind": "BurstPolicy",
        "metadata": {"name": name, "creationTimestamp": "2026-11-27T09:00:00Z", "generation": 3},
        "spec": spec if spec is not None else {},
    }


def enforce(**sections: Any) -> dict[str, Any]:
    return {"mode": "Enforce", "pods": {"podSelector": {"matchLabels": {"a": "b"}}}, **sections}


class TestParsing:
    def test_an_empty_spec_gives_a_dry_run_policy_with_every_default(self) -> None:
        parsed = policy.parse(policy_object())
        assert parsed.valid
        assert parsed.spec == policy.PolicySpec()
        assert parsed.spec.mode == "DryRun"
        assert parsed.generation == 3
        assert parsed.created_at == pytest.approx(1795770000.0)

    def test_units_are_converted_to_bytes_and_seconds(self) -> None:
        parsed = policy.parse(
            policy_object(
                enforce(
                    pacing={"podStartupMemory": "1Gi", "maxStartingPerCore": 1},
                    headroom={"reopenHold": "1m30s", "lockWaitThreshold": "5ms"},
                )
            )
        )
        assert parsed.valid, parsed.errors
        assert parsed.spec.pacing.pod_startup_memory_bytes == 2**30
        assert parsed.spec.pacing.max_starting_per_core == 1.0
        assert parsed.spec.headroom.reopen_hold_s == 90.0
        assert parsed.spec.headroom.lock_wait_threshold_s == pytest.approx(0.005)

    def test_close_below_defaults_to_one_pod_start(self) -> None:
        spec = policy.parse(policy_object({"pacing": {"podStartupMemory": "100Mi"}})).spec
        assert spec.close_below_bytes == 100 * 2**20


class TestValidation:
    def test_every_error_is_reported_with_its_field_path(self) -> None:
        parsed = policy.parse(
            policy_object(
                {
                    "mode": "Sometimes",
                    "pacing": {"burst": "many", "podStartupMemory": "lots"},
                    "headroom": {"reopenHold": "soon"},
                    "bogus": 1,
                }
            )
        )
        paths = {e.path for e in parsed.errors}
        assert paths == {
            "spec.mode",
            "spec.pacing.burst",
            "spec.pacing.podStartupMemory",
            "spec.headroom.reopenHold",
            "spec.bogus",
        }
        assert not parsed.valid

    def test_an_enforce_policy_without_a_pod_selection_is_invalid(self) -> None:
        parsed = policy.parse(policy_object({"mode": "Enforce"}))
        assert [e.path for e in parsed.errors] == ["spec.pods"]

    @pytest.mark.parametrize(
        ("expression", "path"),
        [
            pytest.param({"key": "a", "operator": "In"}, "values", id="in-without-values"),
            pytest.param(
                {"key": "a", "operator": "Exists", "values": ["x"]}, "values", id="exists-values"
            ),
            pytest.param({"key": "-bad-", "operator": "Exists"}, "key", id="bad-key"),
            pytest.param({"key": "a", "operator": "Near"}, "operator", id="bad-operator"),
        ],
    )
    def test_malformed_selector_expressions_are_reported(
        self, expression: dict[str, Any], path: str
    ) -> None:
        spec = {"nodes": {"nodeSelector": {"matchExpressions": [expression]}}}
        parsed = policy.parse(policy_object(spec))
        assert [e.path for e in parsed.errors] == [
            f"spec.nodes.nodeSelector.matchExpressions[0].{path}"
        ]

    def test_a_label_value_that_is_too_long_is_reported(self) -> None:
        spec = enforce(nodes={"nodeSelector": {"matchLabels": {"pool": "x" * 64}}})
        parsed = policy.parse(policy_object(spec))
        assert [e.path for e in parsed.errors] == ["spec.nodes.nodeSelector.matchLabels"]


class TestSeniority:
    def test_the_oldest_policy_sorts_first_and_names_break_ties(self) -> None:
        a = policy.BurstPolicy(name="b", created_at=10.0)
        b = policy.BurstPolicy(name="a", created_at=10.0)
        c = policy.BurstPolicy(name="c", created_at=5.0)
        assert [p.name for p in sorted([a, b, c], key=policy.seniority)] == ["c", "a", "b"]
