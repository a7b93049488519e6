"""Which policy owns a pod or node."""

from __future__ import annotations

import pytest

from burstguard.api import policy
from burstguard.core import selection


def selector(
    labels: dict[str, str] | None = None, *exprs: tuple[str, str, tuple[str, ...]]
) -> policy.LabelSelector:
    return policy.LabelSelector(
        match_labels=tuple(sorted((labels or {}).items())),
        match_expressions=tuple(policy.Requirement(k, op, v) for k, op, v in exprs),
    )


def burst_policy(
    name: str, created_at: float, pods: policy.LabelSelector, mode: str = "Enforce"
) -> policy.BurstPolicy:
    spec = policy.PolicySpec(mode=mode, pods=policy.PodSelection(pod_selector=pods))
    return policy.BurstPolicy(name=name, created_at=created_at, spec=spec)


@pytest.mark.parametrize(
    ("sel", "labels", "expected"),
    [
        pytest.param(selector(), {}, True, id="empty-selects-all"),
        pytest.param(selector({"a": "1"}), {"a": "1", "b": "2"}, True, id="match-labels"),
        pytest.param(selector({"a": "1"}), {"a": "2"}, False, id="match-labels-miss"),
        pytest.param(selector(None, ("a", "In", ("1", "2"))), {"a": "2"}, True, id="in"),
        pytest.param(selector(None, ("a", "In", ("1",))), {}, False, id="in-absent"),
        pytest.param(selector(None, ("a", "NotIn", ("1",))), {}, True, id="notin-absent"),
        pytest.param(selector(None, ("a", "NotIn", ("1",))), {"a": "1"}, False, id="notin-hit"),
        pytest.param(selector(None, ("a", "Exists", ())), {"a": ""}, True, id="exists"),
        pytest.param(
            selector(None, ("a", "DoesNotExist", ())), {"a": ""}, False, id="doesnotexist"
        ),
    ],
)
def test_label_selectors_follow_kubernetes_semantics(
    sel: policy.LabelSelector, labels: dict[str, str], expected: bool
) -> None:
    assert selection.matches(sel, labels) is expected


def test_the_oldest_of_two_overlapping_policies_owns_the_pod_and_the_other_is_named() -> None:
    young = burst_policy("young", 20.0, selector({"app": "x"}))
    old = burst_policy("old", 10.0, selector({"app": "x"}))
    owner, losers = selection.pod_owner(selection.by_seniority([young, old]), {}, {"app": "x"})
    assert owner is old and losers == ("young",)


def test_invalid_policies_own_nothing() -> None:
    broken = policy.BurstPolicy(
        name="broken", created_at=1.0, errors=(policy.FieldError("spec.mode", "bad"),)
    )
    assert selection.by_seniority([broken]) == []


def test_conflict_messages_count_what_was_lost() -> None:
    conflicts = selection.Conflicts(pods={"young": 3}, nodes={})
    assert conflicts.message("young") == "3 pods are also selected by an older policy, which wins"
    assert conflicts.message("old") is None


def namespaced_policy(
    name: str, created_at: float, namespace: str, mode: str = "Enforce"
) -> policy.BurstPolicy:
    """A policy selecting every pod of one namespace (by the apiserver's name label)."""
    spec = policy.PolicySpec(
        mode=mode,
        pods=policy.PodSelection(
            namespace_selector=selector({selection.NAMESPACE_NAME_LABEL: namespace})
        ),
    )
    return policy.BurstPolicy(name=name, created_at=created_at, spec=spec)


VICTIM = namespaced_policy("victim", 10.0, "team-a")
SHADOW = namespaced_policy("shadow", 11.0, "team-c", mode="DryRun")
MINE = namespaced_policy("mine", 12.0, "team-b")
ORDERED = selection.by_seniority([VICTIM, SHADOW, MINE])


@pytest.mark.parametrize(
    ("annotation", "namespace", "expected"),
    [
        pytest.param("victim", "team-a", None, id="selected-by-the-named-policy"),
        pytest.param("victim", "nobody", "does not select it (no policy does)", id="forged"),
        pytest.param("victim", "team-b", "(policy mine owns it)", id="forged-other-team"),
        pytest.param("victim", "kube-system", "kube-system is excluded", id="excluded"),
        pytest.param("shadow", "team-c", "policy shadow is DryRun", id="dry-run"),
        pytest.param("deleted", "team-a", "policy deleted is gone or invalid", id="gone"),
        pytest.param(None, "team-a", "without the webhook's policy annotation", id="no-annotation"),
    ],
)
def test_a_gated_pod_is_paced_only_by_the_enforce_policy_that_really_selects_it(
    annotation: str | None, namespace: str, expected: str | None
) -> None:
    why = selection.refusal(
        annotation, ORDERED, namespace, {}, {}, excluded_namespaces=frozenset({"kube-system"})
    )
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why


def test_a_namespace_the_store_has_not_seen_is_matched_by_its_name_label() -> None:
    owner, _ = selection.pod_policy(ORDERED, "team-a", {}, {})
    assert owner is VICTIM
    assert selection.pod_policy(ORDERED, "team-a", {}, {}, frozenset({"team-a"})) == (None, ())
