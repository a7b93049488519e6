"""Unsafe combinations the CRD cannot see: reported as Ready=False reasons (core.safety)."""

from __future__ import annotations

import dataclasses

from burstguard.api import policy
from burstguard.core import safety

GI = 2**30


def spec(**sections: dict[str, object]) -> policy.PolicySpec:
    parsed, errors = policy.parse_spec({"mode": "DryRun", **sections})
    assert not errors, errors
    return parsed


def reasons(s: policy.PolicySpec, tick_s: float = 0.1, **memory: int | None) -> list[str]:
    return [r.reason for r in safety.refusals(s, tick_s=tick_s, node_memory=memory)]


def test_the_defaults_are_safe_on_an_ordinary_node() -> None:
    assert reasons(spec(), n1=16 * GI) == []


def test_a_cooldown_under_the_operators_tick_is_refused() -> None:
    s = spec(preparation={"cooldown": "2s"})
    assert reasons(s, tick_s=0.1) == []
    assert reasons(s, tick_s=5.0) == ["CooldownUnderTick"]
    off = dataclasses.replace(s, preparation=dataclasses.replace(s.preparation, enabled=False))
    assert reasons(off, tick_s=5.0) == []


def test_a_max_gate_shorter_than_one_release_interval_is_refused() -> None:
    assert reasons(spec(pacing={"releasePerSecond": 0.5, "maxGateSeconds": 1})) == [
        "MaxGateUnderReleaseInterval"
    ]
    assert reasons(spec(pacing={"releasePerSecond": 0.5, "maxGateSeconds": 2})) == []


def test_a_close_level_under_one_pod_start_is_refused() -> None:
    s = spec(headroom={"closeBelow": "100Mi"}, pacing={"podStartupMemory": "256Mi"})
    assert reasons(s) == ["CloseBelowUnderStartup"]


def test_a_reopen_level_above_a_nodes_memory_is_refused_naming_how_many_nodes() -> None:
    s = spec(headroom={"closeBelow": "10Gi", "reopenMargin": 2})
    refused = safety.refusals(s, tick_s=0.1, node_memory={"a": 16 * GI, "b": 32 * GI, "c": None})
    assert [r.reason for r in refused] == ["CannotReopen"]
    assert "1 of 2 guarded nodes (e.g. a)" in refused[0].message
    assert reasons(s, big=64 * GI) == []
