"""The admission patch: which pods are gated and what the patch does to them."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from burstguard.api import names, policy
from burstguard.core import gating, selection

INTAKE = {"key": names.INTAKE_LABEL, "operator": "NotIn", "values": ["closed"]}


class PodBuilder:
    """Builds pod dicts as the apiserver hands them to a webhook."""

    def __init__(self) -> None:
        self.pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "job-", "labels": {"app": "batch"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }

    def labels(self, **labels: str) -> PodBuilder:
        self.pod["metadata"]["labels"] = labels
        return self

    def gates(self, *gates: str) -> PodBuilder:
        self.pod["spec"]["schedulingGates"] = [{"name": g} for g in gates]
        return self

    def node_name(self, name: str) -> PodBuilder:
        self.pod["spec"]["nodeName"] = name
        return self

    def owned_by(self, kind: str) -> PodBuilder:
        self.pod["metadata"]["ownerReferences"] = [{"kind": kind, "name": "x", "controller": True}]
        return self

    def annotations(self, **annotations: str) -> PodBuilder:
        self.pod["metadata"]["annotations"] = annotations
        return self

    def required_terms(self, *terms: dict[str, Any]) -> PodBuilder:
        self.pod["spec"]["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
        return self

    def affinity(self, affinity: dict[str, Any]) -> PodBuilder:
        self.pod["spec"]["affinity"] = affinity
        return self

    def build(self) -> dict[str, Any]:
        return copy.deepcopy(self.pod)


def enforce_policy(
    name: str = "batch", mode: str = "Enforce", *, pin: bool = False
) -> policy.BurstPolicy:
    """A policy selecting app=batch; by default one that steers by intake label (no pin)."""
    sel = policy.LabelSelector(match_labels=(("app", "batch"),))
    spec = policy.PolicySpec(
        mode=mode,
        pods=policy.PodSelection(pod_selector=sel),
        pacing=policy.Pacing(pin_to_node=pin),
    )
    return policy.BurstPolicy(name=name, created_at=1.0, spec=spec)


def apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """A small RFC 6902 `add` applier (the only op the webhook emits)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add"
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = doc
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target.append(op["value"]) if last == "-" else target.insert(int(last), op["value"])
        else:
            target[last] = op["value"]
    return doc


def gated(pod: dict[str, Any], *, pin: bool = False) -> dict[str, Any]:
    d = gating.decide(pod, "default", {}, [enforce_policy(pin=pin)])
    return dict(apply(pod, list(d.ops)))


def required_terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    na = pod["spec"]["affinity"]["nodeAffinity"]
    return list(na["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"])


class TestWhoIsGated:
    def test_a_selected_pod_gets_the_gate_the_intake_term_and_the_policy_annotation(self) -> None:
        pod = gated(PodBuilder().build())
        assert pod["spec"]["schedulingGates"] == [{"name": names.SCHEDULING_GATE}]
        assert required_terms(pod) == [{"matchExpressions": [INTAKE]}]
        assert pod["metadata"]["annotations"] == {names.POLICY_ANNOTATION: "batch"}

    def test_a_pinning_policy_adds_the_gate_and_annotation_but_no_affinity(self) -> None:
        zone = {"key": "zone", "operator": "In", "values": ["a"]}
        for builder in (PodBuilder(), PodBuilder().required_terms({"matchExpressions": [zone]})):
            before = builder.build()
            pod = gated(before, pin=True)
            assert pod["spec"]["schedulingGates"] == [{"name": names.SCHEDULING_GATE}]
            assert pod["spec"].get("affinity") == before["spec"].get("affinity")
            assert pod["metadata"]["annotations"] == {names.POLICY_ANNOTATION: "batch"}

    @pytest.mark.parametrize(
        ("pod", "reason"),
        [
            pytest.param(PodBuilder().node_name("n1").build(), "names a node", id="node-name"),
            pytest.param(PodBuilder().owned_by("DaemonSet").build(), "DaemonSet", id="daemonset"),
            pytest.param(
                PodBuilder().annotations(**{gating.MIRROR_ANNOTATION: "x"}).build(),
                "mirror",
                id="mirror",
            ),
            pytest.param(PodBuilder().labels(app="web").build(), "no policy", id="unselected"),
        ],
    )
    def test_exempt_and_unselected_pods_are_left_alone(
        self, pod: dict[str, Any], reason: str
    ) -> None:
        d = gating.decide(pod, "default", {}, [enforce_policy()])
        assert d.ops == () and reason in d.reason

    def test_a_dry_run_policy_gates_nothing(self) -> None:
        d = gating.decide(PodBuilder().build(), "default", {}, [enforce_policy(mode="DryRun")])
        assert d.ops == () and d.policy is None

    def test_excluded_namespaces_are_never_gated(self) -> None:
        d = gating.decide(
            PodBuilder().build(), "kube-system", {}, [enforce_policy()], frozenset({"kube-system"})
        )
        assert d.ops == ()

    def test_the_namespace_name_label_is_always_known(self) -> None:
        sel = policy.LabelSelector(match_labels=((gating.NAMESPACE_NAME_LABEL, "jobs"),))
        p = policy.BurstPolicy(
            name="ns",
            created_at=1.0,
            spec=policy.PolicySpec(
                mode="Enforce", pods=policy.PodSelection(namespace_selector=sel)
            ),
        )
        assert gating.decide(PodBuilder().build(), "jobs", {}, [p]).policy == "ns"
        assert gating.decide(PodBuilder().build(), "other", {}, [p]).policy is None

    def test_the_oldest_matching_policy_is_named(self) -> None:
        old, young = enforce_policy("old"), enforce_policy("young")
        young = policy.BurstPolicy(name="young", created_at=5.0, spec=young.spec)
        d = gating.decide(PodBuilder().build(), "default", {}, selection.by_seniority([young, old]))
        assert d.policy == "old"


class TestPatchShape:
    def test_the_gate_is_appended_after_other_controllers_gates(self) -> None:
        pod = gated(PodBuilder().gates("other.io/gate").build())
        assert [g["name"] for g in pod["spec"]["schedulingGates"]] == [
            "other.io/gate",
            names.SCHEDULING_GATE,
        ]

    def test_the_intake_expression_is_appended_to_every_existing_required_term(self) -> None:
        zone = {"key": "zone", "operator": "In", "values": ["a"]}
        pod = gated(
            PodBuilder()
            .required_terms(
                {"matchExpressions": [zone]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
            )
            .build()
        )
        terms = required_terms(pod)
        assert terms[0]["matchExpressions"] == [zone, INTAKE]
        assert terms[1]["matchExpressions"] == [INTAKE]
        assert "matchFields" in terms[1]

    def test_an_empty_term_matches_no_node_and_stays_empty(self) -> None:
        zone = {"key": "zone", "operator": "In", "values": ["a"]}
        pod = gated(PodBuilder().required_terms({}, {"matchExpressions": [zone]}).build())
        assert required_terms(pod) == [{}, {"matchExpressions": [zone, INTAKE]}]

    def test_a_pin_goes_into_match_fields_of_every_term(self) -> None:
        pin = {"key": "metadata.name", "operator": "In", "values": ["n1"]}
        zone = {"key": "zone", "operator": "In", "values": ["a"]}
        for pod in (
            PodBuilder().build(),
            PodBuilder().affinity({"podAffinity": {"x": 1}}).build(),
            PodBuilder().affinity({"nodeAffinity": {}}).build(),
            PodBuilder().required_terms().build(),
            PodBuilder()
            .required_terms({"matchExpressions": [zone]}, {"matchFields": [dict(pin)]})
            .build(),
        ):
            shape = gating.affinity_shape(pod["spec"])
            pinned = apply(pod, gating.require_ops(shape, pin, field=True))
            for term in required_terms(pinned):
                assert term["matchFields"][-1] == pin
                assert term.get("matchExpressions") in (None, [zone])

    def test_preferred_affinity_is_kept_when_the_required_part_is_added(self) -> None:
        preferred = [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}
        ]
        pod = gated(
            PodBuilder()
            .affinity(
                {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}
            )
            .build()
        )
        na = pod["spec"]["affinity"]["nodeAffinity"]
        assert na["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
        assert required_terms(pod) == [{"matchExpressions": [INTAKE]}]

    def test_pod_affinity_is_kept_when_node_affinity_is_added(self) -> None:
        pod = gated(PodBuilder().affinity({"podAffinity": {"x": 1}}).build())
        assert pod["spec"]["affinity"]["podAffinity"] == {"x": 1}
        assert required_terms(pod) == [{"matchExpressions": [INTAKE]}]

    def test_the_policy_annotation_is_escaped_and_added_next_to_others(self) -> None:
        pod = gated(PodBuilder().annotations(keep="me").build())
        assert pod["metadata"]["annotations"] == {"keep": "me", names.POLICY_ANNOTATION: "batch"}

    @pytest.mark.parametrize(
        "builder",
        [
            pytest.param(PodBuilder(), id="plain"),
            pytest.param(PodBuilder().gates("other.io/gate").annotations(a="b"), id="gates"),
            pytest.param(
                PodBuilder().required_terms(
                    {"matchExpressions": [{"key": "z", "operator": "Exists"}]}
                ),
                id="terms",
            ),
        ],
    )
    def test_gating_twice_changes_nothing_the_second_time(self, builder: PodBuilder) -> None:
        for pin in (False, True):
            once = gated(builder.build(), pin=pin)
            assert gating.decide(once, "default", {}, [enforce_policy(pin=pin)]).ops == ()


class TestAdmissionReview:
    def review(self, operation: str = "CREATE", dry_run: bool = False) -> dict[str, Any]:
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": operation,
                "namespace": "default",
                "object": PodBuilder().build(),
                "dryRun": dry_run,
            },
        }

    def test_the_response_allows_and_carries_a_base64_json_patch(self) -> None:
        body, decision = gating.review(self.review(), lambda ns: {}, [enforce_policy()])
        response = body["response"]
        assert response["uid"] == "u-1" and response["allowed"] is True
        assert response["patchType"] == "JSONPatch"
        assert json.loads(base64.b64decode(response["patch"])) == list(decision.ops)

    def test_updates_are_allowed_untouched(self) -> None:
        body, _ = gating.review(self.review("UPDATE"), lambda ns: {}, [enforce_policy()])
        assert body["response"] == {"uid": "u-1", "allowed": True}

    def test_a_dry_run_request_is_patched_but_marked_so_nothing_is_counted(self) -> None:
        body, decision = gating.review(self.review(dry_run=True), lambda ns: {}, [enforce_policy()])
        assert "patch" in body["response"] and decision.dry_run


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        pytest.param([names.SCHEDULING_GATE], True, id="only-ours"),
        pytest.param(["example.com/admission", names.SCHEDULING_GATE], False, id="another-first"),
        pytest.param([names.SCHEDULING_GATE, "kueue.x-k8s.io/admission"], False, id="kueue-after"),
        pytest.param(["example.com/admission"], False, id="not-ours"),
        pytest.param([], False, id="none"),
    ],
)
def test_a_pod_is_paceable_only_when_our_gate_is_the_last_one(
    gates: list[str], expected: bool
) -> None:
    assert gating.paceable(gates) is expected
