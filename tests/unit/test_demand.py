"""Workload objects as forecast sources (k8s.demand), as a watch delivers them."""

from __future__ import annotations

from typing import Any

from burstguard.api import policy as policy_api
from burstguard.core import forecasting
from burstguard.k8s import demand

GI = 2**30


def template(memory: str = "1Gi", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": memory}}}]},
    }


def cronjob(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly", "namespace": "batch", "uid": "cj1"},
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {"parallelism": 8, "completions": 5, "template": template(team="a")}
            },
            **spec,
        },
        "status": {"active": [{"name": "nightly-1"}]},
    }


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "batch", "uid": f"uid-{name}"},
        "spec": {"parallelism": 4, "template": template(team="a"), **spec},
        "status": {},
    }


def test_a_cronjob_runs_min_of_parallelism_and_completions_with_its_template_memory() -> None:
    a = demand.cronjob(cronjob())
    assert a.cron is not None and a.labels == {"team": "a"} and a.namespace == "batch"
    assert (a.cron.pods, a.cron.shape.memory_bytes, a.cron.time_zone) == (5, GI, "Europe/Berlin")
    assert (a.cron.concurrency, a.cron.active) == ("Forbid", 1)


def test_only_a_suspended_unfinished_job_is_pending_demand() -> None:
    assert demand.job(job("running")) is None
    held = demand.job(job("held", suspend=True, completions=6))
    assert held is not None and held.pending[0].pods == 4
    done = job("done", suspend=True)
    done["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert demand.job(done) is None


def test_a_cronjobs_recent_runs_give_its_lag() -> None:
    store = demand.DemandStore()
    store.cronjobs.replace([cronjob()])
    run = job("nightly-1")
    run["metadata"].update(
        creationTimestamp="2026-12-06T01:00:07Z",
        annotations={demand.SCHEDULED_ANNOTATION: "2026-12-06T01:00:00Z"},
        ownerReferences=[{"kind": "CronJob", "controller": True, "uid": "cj1"}],
    )
    store.jobs.apply("ADDED", run)
    (a,) = store.announced()
    assert a.cron is not None and a.cron.lags_s == (7.0,)


def workload(admitted: bool = False, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {
            "name": "job-held-1",
            "namespace": "batch",
            "uid": "w1",
            "ownerReferences": [owner or {"kind": "Job", "controller": True, "uid": "uid-held"}],
        },
        "spec": {"podSets": [{"name": "main", "count": 4, "template": template(team="a")}]},
        "status": {},
    }
    if admitted:
        obj["status"]["conditions"] = [{"type": "QuotaReserved", "status": "True"}]
    return obj


def policy(name: str, **labels: str) -> policy_api.BurstPolicy:
    spec, errors = policy_api.parse_spec(
        {"mode": "Enforce", "pods": {"podSelector": {"matchLabels": labels}}}
    )
    assert not errors
    return policy_api.BurstPolicy(name=name, created_at=1.0, spec=spec)


def test_a_workload_pending_admission_stands_for_its_suspended_job() -> None:
    store = demand.DemandStore()
    store.jobs.replace([job("held", suspend=True)])
    store.workloads.replace([workload(), {**workload(admitted=True), "metadata": {"name": "x"}}])
    crons, pending = store.sources_for("p", [policy("p", team="a")], lambda ns: {})
    result = forecasting.pending_bursts(pending, 0.0, GI)
    assert crons == [] and [b.source for b in result] == ["Workload batch/job-held-1/main"]


def test_a_pod_workload_is_selected_by_its_pods_labels() -> None:
    store = demand.DemandStore()
    owner = {"kind": "Pod", "controller": True, "uid": "p1", "name": "solo"}
    obj = workload(owner=owner)
    obj["spec"]["podSets"][0]["template"]["metadata"] = {}
    store.workloads.replace([obj])
    ordered = [policy("p", team="a")]
    assert store.sources_for("p", ordered, lambda ns: {})[1] == []
    labels = {"batch/solo": {"team": "a"}}
    _, pending = store.sources_for("p", ordered, lambda ns: {}, labels.get)
    assert [s.pods for s in pending] == [4]
