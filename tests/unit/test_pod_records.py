"""Compact pod records, the store's gated queue, and what the watch feeds the ledger."""

from __future__ import annotations

from typing import Any

from burstguard.api import names
from burstguard.core import ledger
from burstguard.k8s import pods


class Pod:
    """Builds pod objects as a watch delivers them."""

    def __init__(self, name: str = "p1") -> None:
        self.obj: dict[str, Any] = {
            "metadata": {
                "name": name,
                "namespace": "jobs",
                "uid": f"uid-{name}",
                "creationTimestamp": "2026-11-27T09:00:00Z",
                "annotations": {names.POLICY_ANNOTATION: "batch"},
            },
            "spec": {
                "containers": [{"name": "c", "resources": {"requests": {"memory": "128Mi"}}}],
                "schedulingGates": [{"name": "other.io/g"}, {"name": names.SCHEDULING_GATE}],
            },
            "status": {"phase": "Pending"},
        }

    def ungated(self) -> Pod:
        self.obj["spec"].pop("schedulingGates")
        return self

    def bound(self, node: str) -> Pod:
        self.obj["spec"]["nodeName"] = node
        return self

    def running(self) -> Pod:
        self.obj["status"] = {
            "phase": "Running",
            "containerStatuses": [{"name": "c", "state": {"running": {}}}],
        }
        return self

    def build(self) -> dict[str, Any]:
        return self.obj


def test_a_record_keeps_the_gate_index_memory_request_and_policy() -> None:
    rec = pods.compact(Pod().build())
    assert rec.gate_index == 1 and rec.memory_bytes == 128 * 2**20 and rec.policy == "batch"
    assert rec.key == "jobs/p1" and not rec.starting


def stage(store: pods.PodStore, key: str) -> str | None:
    entry = store.ledger.entries.get(key)
    return None if entry is None else entry.stage


def test_a_pod_moves_from_gated_to_released_to_bound_to_started_in_the_ledger() -> None:
    store = pods.PodStore(clock=lambda: 50.0)
    store.apply("ADDED", Pod().build())
    assert list(store.gated["batch"]) == ["jobs/p1"] and stage(store, "jobs/p1") is None
    store.ledger.release("jobs/p1", node=None, memory_bytes=None, policy="batch", now=50.0)
    store.apply("MODIFIED", Pod().ungated().build())
    assert not store.gated["batch"] and stage(store, "jobs/p1") == ledger.RELEASED
    assert [e.key for e in store.ledger.unplaced("batch")] == ["jobs/p1"]
    store.apply("MODIFIED", Pod().ungated().bound("n1").build())
    assert stage(store, "jobs/p1") == ledger.BOUND and store.ledger.starting("n1") == 1
    store.apply("MODIFIED", Pod().ungated().bound("n1").running().build())
    assert stage(store, "jobs/p1") == ledger.STARTED and store.ledger.starting("n1") == 0
    store.apply("DELETED", Pod().ungated().bound("n1").running().build())
    assert store.pods == {} and store.ledger.entries == {}


def test_an_ungated_pod_with_only_a_policy_annotation_books_nothing_until_it_binds() -> None:
    """A pod can write the gate and a policy's name on itself and lift the gate again: an
    annotation the operator did not act on is not a start heading to any node."""
    store = pods.PodStore(clock=lambda: 50.0)
    store.apply("ADDED", Pod().ungated().build())
    assert stage(store, "jobs/p1") is None and store.ledger.unplaced("batch") == []
    store.apply("MODIFIED", Pod().ungated().bound("n1").build())
    assert stage(store, "jobs/p1") == ledger.BOUND and store.ledger.starting("n1") == 1


def test_a_relist_forgets_vanished_pods_and_tells_listeners_once() -> None:
    store = pods.PodStore()
    seen: list[str] = []
    gone: list[str] = []
    store.on_new.append(lambda r: seen.append(r.key))
    store.on_gone.append(lambda r: gone.append(r.key))
    store.replace([Pod("a").build(), Pod("b").bound("n1").ungated().build()])
    store.replace([Pod("b").bound("n1").ungated().build()])
    assert seen == ["jobs/a", "jobs/b"] and gone == ["jobs/a"]
    assert store.gated_count() == 0 and store.ledger.starting("n1") == 1


def test_a_gated_pod_record_carries_its_node_constraints_and_term_shape() -> None:
    obj = Pod().build()
    obj["spec"]["nodeSelector"] = {"pool": "batch"}
    obj["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "z", "operator": "Exists"}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                ]
            }
        }
    }
    rec = pods.compact(obj)
    assert rec.constraints.node_selector == (("pool", "batch"),)
    assert rec.affinity.terms == ((True, False), (False, True))
    assert rec.pinned == "n1"
    assert [op["path"].rsplit("/", 2)[-2:] for op in pods.pin_ops(rec, "n2")] == [
        ["0", "matchFields"],
        ["matchFields", "-"],
    ]


def test_the_intake_requirement_is_not_a_placement_constraint() -> None:
    obj = Pod().build()
    intake = {"key": names.INTAKE_LABEL, "operator": "NotIn", "values": ["closed"]}
    obj["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [intake]}]
            }
        }
    }
    rec = pods.compact(obj)
    assert rec.constraints.terms[0].expressions == ()
    assert rec.affinity.terms == ((True, False),)


def test_a_pod_without_affinity_is_pinned_by_a_new_term() -> None:
    rec = pods.compact(Pod().build())
    assert rec.affinity == pods.NO_AFFINITY
    (op,) = pods.pin_ops(rec, "n2")
    assert op["path"] == "/spec/affinity"
    term = op["value"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    ]


def test_records_of_one_template_share_one_affinity_shape() -> None:
    a, b = pods.compact(Pod("a").build()), pods.compact(Pod("b").build())
    assert a.affinity is b.affinity


def test_a_finished_start_counts_against_its_node_until_a_later_summary_shows_it() -> None:
    clock = iter([40.0, 41.0, 50.0, 60.0])
    store = pods.PodStore(clock=lambda: next(clock))
    store.replace([Pod("a").bound("n1").ungated().build(), Pod("b").bound("n1").ungated().build()])
    assert store.ledger.starting("n1") == 2
    store.apply("MODIFIED", Pod("a").bound("n1").ungated().running().build())
    store.apply("MODIFIED", Pod("b").bound("n1").ungated().running().build())
    assert store.ledger.starting("n1") == 0
    mib128 = 128 * 2**20

    def committed(sampled_at: float) -> int:
        return store.ledger.committed_bytes("n1", sampled_at=sampled_at, default_bytes=0)

    assert committed(45.0) == 2 * mib128
    assert committed(55.0) == mib128  # the summary after a shows a
    store.apply("DELETED", Pod("b").bound("n1").ungated().running().build())
    assert committed(0.0) == mib128


def test_a_pod_first_seen_running_is_not_counted() -> None:
    store = pods.PodStore(clock=lambda: 1.0)
    store.replace([Pod("a").bound("n1").ungated().running().build()])
    assert store.ledger.entries == {}


def only_ours(pod: Pod) -> Pod:
    pod.obj["spec"]["schedulingGates"] = [{"name": names.SCHEDULING_GATE}]
    return pod


def test_a_pod_another_controller_still_holds_is_gated_but_not_queued() -> None:
    rec = pods.compact(Pod().build())
    assert rec.gated and rec.queued is None and rec.held_by == ("other.io/g",)


def test_a_pod_whose_only_gate_is_ours_is_queued() -> None:
    rec = pods.compact(only_ours(Pod()).build())
    assert rec.queued is not None and rec.held_by == ()


def test_a_pod_with_only_another_controllers_gate_is_not_in_flight() -> None:
    store = pods.PodStore()
    pod = Pod()
    pod.obj["spec"]["schedulingGates"] = [{"name": "other.io/g"}]
    store.apply("ADDED", pod.build())
    assert not store.gated["batch"] and store.ledger.entries == {}


def test_a_pod_queues_from_when_the_other_gate_lifts_not_from_its_creation() -> None:
    clock = [5000.0]
    store = pods.PodStore(clock=lambda: clock[0])
    store.apply("ADDED", Pod().build())
    assert store.gated["batch"]["jobs/p1"].queued is None
    clock[0] = 9000.0
    store.apply("MODIFIED", only_ours(Pod()).build())
    queued = store.gated["batch"]["jobs/p1"].queued
    assert queued is not None and queued.created_at == 9000.0
    clock[0] = 9500.0
    store.apply("MODIFIED", only_ours(Pod()).build())
    again = store.gated["batch"]["jobs/p1"].queued
    assert again is not None and again.created_at == 9000.0


def test_a_pod_first_seen_with_only_our_gate_queues_from_its_creation() -> None:
    store = pods.PodStore(clock=lambda: 9000.0)
    store.apply("ADDED", only_ours(Pod()).build())
    queued = store.gated["batch"]["jobs/p1"].queued
    assert queued is not None and queued.created_at == pods.timestamp("2026-11-27T09:00:00Z")
