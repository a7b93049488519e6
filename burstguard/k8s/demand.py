"""Workloads that announce bursts before their pods exist: CronJobs, suspended Jobs, Workloads.

Three informer stores (``batch/v1`` CronJobs and Jobs, Kueue's ``Workload`` when its CRDs are
served) reduce each object at once to what ``core.forecasting`` needs, plus the namespace and
pod-template labels a policy selects by. Jobs serve twice: a suspended one is pending demand,
and a CronJob's recent Jobs carry the lag between their scheduled time (the annotation
``batch.kubernetes.io/cronjob-scheduled-timestamp``) and their creation. Parsing is pure;
the stores keep no full objects.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from burstguard.api import policy as policy_api
from burstguard.core import forecasting, gating, selection
from burstguard.k8s import apiclient, pods

CRONJOBS_PATH: Final = "/apis/batch/v1/cronjobs"
JOBS_PATH: Final = "/apis/batch/v1/jobs"
KUEUE_GROUP_VERSION: Final = "kueue.x-k8s.io/v1beta2"
WORKLOADS_PATH: Final = f"/apis/{KUEUE_GROUP_VERSION}/workloads"
SCHEDULED_ANNOTATION: Final = "batch.kubernetes.io/cronjob-scheduled-timestamp"
HISTORY: Final = 5
"""Recent runs of one CronJob whose lag is remembered."""


@dataclass(frozen=True)
class Announced:
    """One workload's announced demand and what a policy selects it by."""

    namespace: str
    labels: Mapping[str, str]
    """The pod template's labels."""
    cron: forecasting.CronSource | None = None
    pending: tuple[forecasting.PendingSource, ...] = ()
    owner_pod: str = ""
    """``namespace/name`` of the Pod a Workload stands for (Kueue's pod integration leaves the
    Workload's template without labels: the pod's own labels are used)."""


def _key(meta: Mapping[str, Any]) -> str:
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _shape(template: Mapping[str, Any]) -> forecasting.PodShape:
    memory, constraints = pods.template_demand(template.get("spec") or {})
    return forecasting.PodShape(memory, constraints)


def _pods_at_once(job_spec: Mapping[str, Any], done: int = 0) -> int:
    """Pods a Job runs at once: parallelism (default 1), capped by completions left."""
    parallelism = int(job_spec.get("parallelism", 1) or 0)
    completions = job_spec.get("completions")
    if completions is None:
        return parallelism
    return max(0, min(parallelism, int(completions) - done))


def _controller(meta: Mapping[str, Any], kind: str) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and (not kind or ref.get("kind") == kind):
            return str(ref.get("uid", ""))
    return ""


def cronjob(obj: Mapping[str, Any], lags_s: tuple[float, ...] = ()) -> Announced:
    """A CronJob's next runs."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = job_spec.get("template") or {}
    source = forecasting.CronSource(
        key=_key(meta),
        schedule=str(spec.get("schedule", "")),
        time_zone=spec.get("timeZone") or None,
        pods=_pods_at_once(job_spec),
        shape=_shape(template),
        suspended=bool(spec.get("suspend")),
        concurrency=str(spec.get("concurrencyPolicy") or forecasting.CONCURRENCY_ALLOW),
        active=len((obj.get("status") or {}).get("active") or []),
        lags_s=lags_s,
    )
    labels = (template.get("metadata") or {}).get("labels") or {}
    return Announced(str(meta.get("namespace", "")), dict(labels), cron=source)


def _finished(status: Mapping[str, Any], types: Iterable[str]) -> bool:
    wanted = set(types)
    return any(
        c.get("type") in wanted and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def job(obj: Mapping[str, Any]) -> Announced | None:
    """A suspended, unfinished Job as pending demand (None otherwise)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if not spec.get("suspend") or _finished(status, ("Complete", "Failed")):
        return None
    template = spec.get("template") or {}
    source = forecasting.PendingSource(
        key=_key(meta),
        kind=forecasting.KIND_JOB,
        pods=_pods_at_once(spec, int(status.get("succeeded") or 0)),
        shape=_shape(template),
        uid=str(meta.get("uid", "")),
    )
    labels = (template.get("metadata") or {}).get("labels") or {}
    return Announced(str(meta.get("namespace", "")), dict(labels), pending=(source,))


def run_lag(obj: Mapping[str, Any]) -> tuple[str, float] | None:
    """(owning CronJob's uid, seconds from scheduled time to creation) of a CronJob's Job."""
    meta = obj.get("metadata") or {}
    owner = _controller(meta, "CronJob")
    scheduled = (meta.get("annotations") or {}).get(SCHEDULED_ANNOTATION)
    if not owner or not scheduled:
        return None
    try:
        return owner, pods.timestamp(meta.get("creationTimestamp")) - pods.timestamp(scheduled)
    except ValueError:
        return None


def workload(obj: Mapping[str, Any]) -> Announced | None:
    """A Kueue Workload pending admission as pending demand, one source per pod set."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if status.get("admission") or _finished(status, ("QuotaReserved", "Admitted", "Finished")):
        return None
    if spec.get("active") is False:
        return None
    key = _key(meta)
    owner = _controller(meta, "")
    sources: list[forecasting.PendingSource] = []
    labels: dict[str, str] = {}
    for pod_set in spec.get("podSets") or []:
        template = pod_set.get("template") or {}
        labels = labels or dict((template.get("metadata") or {}).get("labels") or {})
        sources.append(
            forecasting.PendingSource(
                key=f"{key}/{pod_set.get('name', '')}",
                kind=forecasting.KIND_WORKLOAD,
                pods=int(pod_set.get("count") or 0),
                shape=_shape(template),
                uid=str(meta.get("uid", "")),
                owner_uid=owner,
            )
        )
    owner_pod = next(
        (
            f"{meta.get('namespace', '')}/{ref.get('name', '')}"
            for ref in meta.get("ownerReferences") or []
            if ref.get("kind") == "Pod" and ref.get("controller")
        ),
        "",
    )
    return Announced(
        str(meta.get("namespace", "")), labels, pending=tuple(sources), owner_pod=owner_pod
    )


class _Table:
    """One informer's records, by key."""

    def __init__(self, parse: Callable[[Mapping[str, Any]], Any], changed: Callable[[], None]):
        self.parse = parse
        self.changed = changed
        self.items: dict[str, Any] = {}

    def replace(self, objects: list[Mapping[str, Any]]) -> None:
        self.items = {}
        for obj in objects:
            self._put(obj)
        self.changed()

    def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind == "DELETED":
            self.items.pop(_key(obj.get("metadata") or {}), None)
        else:
            self._put(obj)
        self.changed()

    def _put(self, obj: Mapping[str, Any]) -> None:
        key = _key(obj.get("metadata") or {})
        parsed = self.parse(obj)
        if parsed is None:
            self.items.pop(key, None)
        else:
            self.items[key] = parsed


class DemandStore:
    """CronJobs, Jobs and Workloads as announced demand; one informer feeds each table."""

    def __init__(self) -> None:
        self.cronjobs = _Table(
            lambda o: (str((o.get("metadata") or {}).get("uid", "")), o), self._dirty
        )
        self.jobs = _Table(lambda o: (job(o), run_lag(o)), self._dirty)
        self.workloads = _Table(workload, self._dirty)
        self.kueue_served = False
        """Kueue's Workload API is served (its informer runs)."""
        self._cache: list[Announced] | None = None

    def _dirty(self) -> None:
        self._cache = None

    def announced(self) -> list[Announced]:
        """Every workload's announced demand (rebuilt only after a change)."""
        if self._cache is not None:
            return self._cache
        lags: dict[str, list[float]] = collections.defaultdict(list)
        out: list[Announced] = []
        for pending, lag in self.jobs.items.values():
            if pending is not None:
                out.append(pending)
            if lag is not None:
                lags[lag[0]].append(lag[1])
        for uid, obj in self.cronjobs.items.values():
            out.append(cronjob(obj, tuple(lags.get(uid, [])[-HISTORY:])))
        out.extend(self.workloads.items.values())
        self._cache = out
        return out

    def sources_for(
        self,
        policy: str,
        ordered: list[policy_api.BurstPolicy],
        namespace_labels: Callable[[str], Mapping[str, str]],
        pod_labels: Callable[[str], Mapping[str, str] | None] = lambda key: None,
    ) -> tuple[list[forecasting.CronSource], list[forecasting.PendingSource]]:
        """The CronJobs and pending demand whose pods ``policy`` would gate (oldest policy
        that selects them wins, as for pods); ``pod_labels`` finds a live pod's labels."""
        crons: list[forecasting.CronSource] = []
        pending: list[forecasting.PendingSource] = []
        for a in self.announced():
            ns_labels = {gating.NAMESPACE_NAME_LABEL: a.namespace, **namespace_labels(a.namespace)}
            labels = (pod_labels(a.owner_pod) if a.owner_pod else None) or a.labels
            owner, _ = selection.pod_owner(ordered, ns_labels, labels)
            if owner is None or owner.name != policy:
                continue
            if a.cron is not None:
                crons.append(a.cron)
            pending.extend(a.pending)
        return crons, pending


async def served(api: apiclient.Api, group_version: str) -> bool:
    """True when the API server serves ``group_version`` (e.g. Kueue's CRDs are installed)."""
    return await api.get_or_none(f"/apis/{group_version}") is not None
