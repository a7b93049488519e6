"""BurstPolicy types: the Python view of ``crds/burstpolicies.yaml``, parsing and validation.

The CRD schema is the first line of validation (types, ranges, defaults, CEL cross-field
rules); this module holds the frozen types the core decides with, a parser from the custom
resource dict, and a pure validator for what CEL cannot say (label syntax, quantity and
duration values beyond their pattern). Every field carries its JSON key and kind in its
metadata so one generic parser serves every section and a unit test can check, field by
field, that schema and types agree (names, types, defaults). Errors come back as a list with
field paths, never an exception: an invalid policy is reported ``Ready=False``, not crashed on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from burstguard.api import units

MODE_DRY_RUN: Final = "DryRun"
MODE_ENFORCE: Final = "Enforce"
MODES: Final = (MODE_DRY_RUN, MODE_ENFORCE)

DEFAULT_MAX_STARTING_PER_NODE: Final = 16
"""Pods starting at once on one node. By Little's law, in flight = start rate x start
latency: to keep a burst's makespan near the unpaced one the pacer must sustain the node's
own unpaced start rate, and on the 2-core 6.18 host that is 5-7.5 pods/s (40 pods started
within 5.7-7.6 s; 30 within 4.0 s) at a start latency of 2-3 s once starts contend for CPU
(released -> started, 6-12 in flight). 6 x 2.5 = 15: 16. The former 8 capped that node at
about 3 pods/s and made the guarded makespan 2.3x the unguarded one (30 pods, 23.4 s against
10.4 s) while its start latency was hardly lower. The core count is no guide (2 cores
sustained 12 in flight with a p99 start of 3.1 s, against 5.4-7.4 s unpaced)."""
DEFAULT_MAX_STARTING_PER_CORE: Final = 0.0
DEFAULT_RELEASE_PER_SECOND: Final = 50.0
DEFAULT_BURST: Final = 100
DEFAULT_MAX_GATE_SECONDS: Final = 600
DEFAULT_POD_STARTUP_MEMORY_BYTES: Final = 256 * 2**20
DEFAULT_RECLAIM_SCAN_RATE: Final = 0.0
DEFAULT_LOCK_WAIT_THRESHOLD_S: Final = 0.020
DEFAULT_MOUNT_LATENCY_THRESHOLD_S: Final = 1.0
DEFAULT_REOPEN_MARGIN: Final = 1.2
DEFAULT_REOPEN_HOLD_S: Final = 5.0
DEFAULT_STALE_AFTER_S: Final = 30.0
DEFAULT_PREPARATION_COOLDOWN_S: Final = 60.0
DEFAULT_PREPARATION_MIN_BYTES: Final = 64 * 2**20
DEFAULT_PREPARATION_LEAD_TIME_S: Final = 0.0
MAX_PREPARATION_LEAD_TIME_S: Final = 3600.0
"""Longest lead time, seconds: a node prepared an hour early has long refilled its page cache."""

SELECTOR_OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")


def _meta(key: str, kind: str) -> dict[str, str]:
    """Field metadata: the CRD JSON key and the value kind the parser converts by."""
    return {"key": key, "kind": kind}


@dataclass(frozen=True)
class FieldError:
    """One validation problem."""

    path: str
    """Field path in the custom resource, e.g. ``spec.pacing.burst``."""
    message: str
    """What is wrong and what is allowed."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Requirement:
    """One label selector requirement (``matchExpressions`` item)."""

    key: str
    """Label key."""
    operator: str
    """``In``, ``NotIn``, ``Exists`` or ``DoesNotExist``."""
    values: tuple[str, ...] = ()
    """Values for ``In``/``NotIn``; empty otherwise."""


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; empty selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    """``matchLabels`` as sorted (key, value) pairs; default none."""
    match_expressions: tuple[Requirement, ...] = ()
    """``matchExpressions``; default none."""

    @property
    def empty(self) -> bool:
        """True when the selector selects everything."""
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class PodSelection:
    """Which pods a policy paces."""

    namespace_selector: LabelSelector = field(
        default_factory=LabelSelector, metadata=_meta("namespaceSelector", "selector")
    )
    """Labels of the pod's namespace; default empty (every namespace)."""
    pod_selector: LabelSelector = field(
        default_factory=LabelSelector, metadata=_meta("podSelector", "selector")
    )
    """Labels of the pod; default empty (every pod)."""


@dataclass(frozen=True)
class NodeSelection:
    """Which nodes a policy guards."""

    node_selector: LabelSelector = field(
        default_factory=LabelSelector, metadata=_meta("nodeSelector", "selector")
    )
    """Labels of the node; default empty (every node)."""


@dataclass(frozen=True)
class Pacing:
    """How fast gated pods are released."""

    max_starting_per_node: int = field(
        default=DEFAULT_MAX_STARTING_PER_NODE, metadata=_meta("maxStartingPerNode", "int")
    )
    """Most pods starting at once on one node, pods; default 16."""
    max_starting_per_core: float = field(
        default=DEFAULT_MAX_STARTING_PER_CORE, metadata=_meta("maxStartingPerCore", "float")
    )
    """Most pods starting at once per CPU core, pods/core; default 0 (off)."""
    release_per_second: float = field(
        default=DEFAULT_RELEASE_PER_SECOND, metadata=_meta("releasePerSecond", "float")
    )
    """Cluster-wide token bucket rate, pods/s; default 50."""
    burst: int = field(default=DEFAULT_BURST, metadata=_meta("burst", "int"))
    """Token bucket capacity, pods; default 100."""
    max_gate_seconds: int = field(
        default=DEFAULT_MAX_GATE_SECONDS, metadata=_meta("maxGateSeconds", "int")
    )
    """Longest a pod stays gated before it is released anyway, seconds; default 600."""
    pin_to_node: bool = field(default=True, metadata=_meta("pinToNode", "bool"))
    """Pin each release to the node it was budgeted on; default true."""
    pod_startup_memory_bytes: int = field(
        default=DEFAULT_POD_STARTUP_MEMORY_BYTES, metadata=_meta("podStartupMemory", "quantity")
    )
    """Memory a start costs when the pod requests none, bytes; default 256Mi."""


@dataclass(frozen=True)
class HeadroomRules:
    """When a node closes and reopens for paced pods."""

    close_below_bytes: int = field(default=0, metadata=_meta("closeBelow", "quantity"))
    """Close below this headroom, bytes; default 0 = podStartupMemory."""
    close_on_reclaim: bool = field(default=True, metadata=_meta("closeOnReclaim", "bool"))
    """Close while reclaim scans; default true."""
    reclaim_scan_rate: float = field(
        default=DEFAULT_RECLAIM_SCAN_RATE, metadata=_meta("reclaimScanRate", "float")
    )
    """Scan rate above which reclaim is active, pages/s; default 0 (any scanning)."""
    lock_wait_threshold_s: float = field(
        default=DEFAULT_LOCK_WAIT_THRESHOLD_S, metadata=_meta("lockWaitThreshold", "duration")
    )
    """Shrinker lock wait p99 that closes an exposed node, seconds; default 0.02."""
    mount_latency_threshold_s: float = field(
        default=DEFAULT_MOUNT_LATENCY_THRESHOLD_S,
        metadata=_meta("mountLatencyThreshold", "duration"),
    )
    """mount(2) p99 that closes a node, seconds; default 1."""
    reopen_margin: float = field(
        default=DEFAULT_REOPEN_MARGIN, metadata=_meta("reopenMargin", "float")
    )
    """Reopen only above closeBelow x this; default 1.2."""
    reopen_hold_s: float = field(
        default=DEFAULT_REOPEN_HOLD_S, metadata=_meta("reopenHold", "duration")
    )
    """Time above the reopen level before reopening, seconds; default 5."""
    stale_after_s: float = field(
        default=DEFAULT_STALE_AFTER_S, metadata=_meta("staleAfter", "duration")
    )
    """Summary age that makes a node Stale, seconds; default 30."""


@dataclass(frozen=True)
class Preparation:
    """Preparation requests written on nodes short of their share of queued demand."""

    enabled: bool = field(default=True, metadata=_meta("enabled", "bool"))
    """Write requests at all; default true (never in DryRun)."""
    cooldown_s: float = field(
        default=DEFAULT_PREPARATION_COOLDOWN_S, metadata=_meta("cooldown", "duration")
    )
    """Least time between two requests to one node, seconds; default 60."""
    min_bytes: int = field(
        default=DEFAULT_PREPARATION_MIN_BYTES, metadata=_meta("minBytes", "quantity")
    )
    """Smallest shortfall worth a request, bytes; default 64Mi."""
    lead_time_s: float = field(
        default=DEFAULT_PREPARATION_LEAD_TIME_S, metadata=_meta("leadTime", "duration")
    )
    """How long before a forecast burst (CronJob run, suspended Job, Kueue Workload pending
    admission) its nodes are asked to prepare, seconds; default 0 (off), at most 1h."""


@dataclass(frozen=True)
class PolicySpec:
    """``spec`` of a BurstPolicy."""

    mode: str = field(default=MODE_DRY_RUN, metadata=_meta("mode", "enum"))
    """``DryRun`` (default) or ``Enforce``."""
    pods: PodSelection = field(default_factory=PodSelection, metadata=_meta("pods", "object"))
    """Which pods are paced."""
    nodes: NodeSelection = field(default_factory=NodeSelection, metadata=_meta("nodes", "object"))
    """Which nodes are guarded."""
    pacing: Pacing = field(default_factory=Pacing, metadata=_meta("pacing", "object"))
    """Release rate and limits."""
    headroom: HeadroomRules = field(
        default_factory=HeadroomRules, metadata=_meta("headroom", "object")
    )
    """Node close/reopen rules."""
    preparation: Preparation = field(
        default_factory=Preparation, metadata=_meta("preparation", "object")
    )
    """Node preparation requests."""

    @property
    def enforcing(self) -> bool:
        """True in Enforce mode."""
        return self.mode == MODE_ENFORCE

    @property
    def close_below_bytes(self) -> int:
        """Effective close threshold: ``closeBelow`` or, when 0, one pod start."""
        return self.headroom.close_below_bytes or self.pacing.pod_startup_memory_bytes


@dataclass(frozen=True)
class BurstPolicy:
    """A parsed BurstPolicy object."""

    name: str
    """metadata.name."""
    created_at: float
    """metadata.creationTimestamp as Unix seconds (orders conflicts: oldest wins)."""
    spec: PolicySpec = field(default_factory=PolicySpec)
    """The parsed spec (defaults where the object had errors)."""
    generation: int = 0
    """metadata.generation."""
    uid: str = ""
    """metadata.uid."""
    errors: tuple[FieldError, ...] = ()
    """Parse and validation errors; a policy with errors is not applied."""

    @property
    def valid(self) -> bool:
        """True when the policy has no errors."""
        return not self.errors


def seniority(policy: BurstPolicy) -> tuple[float, str]:
    """Sort key: oldest first, then by name (the winner of a conflict sorts first)."""
    return (policy.created_at, policy.name)


def _parse_selector(raw: Any, path: str, errors: list[FieldError]) -> LabelSelector:
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, Mapping):
        errors.append(FieldError(path, "must be a label selector object"))
        return LabelSelector()
    labels_raw = raw.get("matchLabels") or {}
    labels: list[tuple[str, str]] = []
    if isinstance(labels_raw, Mapping):
        labels = sorted((str(k), str(v)) for k, v in labels_raw.items())
    else:
        errors.append(FieldError(f"{path}.matchLabels", "must be a map of strings"))
    exprs: list[Requirement] = []
    exprs_raw = raw.get("matchExpressions") or []
    if not isinstance(exprs_raw, Sequence) or isinstance(exprs_raw, str):
        errors.append(FieldError(f"{path}.matchExpressions", "must be a list"))
        exprs_raw = []
    for i, item in enumerate(exprs_raw):
        if not isinstance(item, Mapping):
            errors.append(FieldError(f"{path}.matchExpressions[{i}]", "must be an object"))
            continue
        values = item.get("values") or []
        exprs.append(
            Requirement(
                key=str(item.get("key", "")),
                operator=str(item.get("operator", "")),
                values=tuple(str(v) for v in values) if isinstance(values, list) else (),
            )
        )
    return LabelSelector(match_labels=tuple(labels), match_expressions=tuple(exprs))


def _parse_value(kind: str, raw: Any, path: str, errors: list[FieldError]) -> Any:
    """Convert one JSON value by kind; return None (keep the default) on error."""
    try:
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"must be an integer, got {raw!r}")
            return raw
        if kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError(f"must be a number, got {raw!r}")
            return float(raw)
        if kind == "bool":
            if not isinstance(raw, bool):
                raise ValueError(f"must be true or false, got {raw!r}")
            return raw
        if kind == "enum":
            return str(raw)
        if kind == "quantity":
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise ValueError(f"must be a quantity, got {raw!r}")
            return units.quantity_bytes(raw)
        if kind == "duration":
            if not isinstance(raw, str):
                raise ValueError(f"must be a duration string like 5s, got {raw!r}")
            return units.duration_seconds(raw)
    except (ValueError, units.UnitError) as exc:
        errors.append(FieldError(path, str(exc)))
        return None
    raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover


def _parse_section(cls: type[Any], raw: Any, path: str, errors: list[FieldError]) -> Any:
    """Parse one schema object into dataclass ``cls`` using each field's metadata."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.append(FieldError(path, "must be an object"))
        return cls()
    values: dict[str, Any] = {}
    known = set()
    for f in dataclasses.fields(cls):
        key, kind = f.metadata["key"], f.metadata["kind"]
        known.add(key)
        if key not in raw or raw[key] is None:
            continue
        sub = f"{path}.{key}"
        if kind == "object":
            values[f.name] = _parse_section(_section_type(cls, f.name), raw[key], sub, errors)
        elif kind == "selector":
            values[f.name] = _parse_selector(raw[key], sub, errors)
        else:
            parsed = _parse_value(kind, raw[key], sub, errors)
            if parsed is not None:
                values[f.name] = parsed
    for key in raw:
        if key not in known:
            errors.append(FieldError(f"{path}.{key}", "unknown field"))
    return cls(**values)


def _section_type(cls: type[Any], name: str) -> type[Any]:
    """The dataclass type of a nested section field (resolved from the default factory)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    factory: Any = f.default_factory
    if not isinstance(factory, type):  # pragma: no cover - sections always have a factory
        raise TypeError(f"{cls.__name__}.{name} is not a section")
    return factory


def parse_spec(raw: Any) -> tuple[PolicySpec, tuple[FieldError, ...]]:
    """Parse ``spec`` and validate it; return the spec (defaults where invalid) and every error."""
    errors: list[FieldError] = []
    spec = _parse_section(PolicySpec, raw, "spec", errors)
    assert isinstance(spec, PolicySpec)
    errors.extend(validate(spec))
    return spec, tuple(errors)


def _timestamp(text: Any) -> float:
    if not isinstance(text, str) or not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def parse(obj: Mapping[str, Any]) -> BurstPolicy:
    """Parse a BurstPolicy custom resource dict (as the API server returns it)."""
    meta = obj.get("metadata") or {}
    spec, errors = parse_spec(obj.get("spec"))
    return BurstPolicy(
        name=str(meta.get("name", "")),
        created_at=_timestamp(meta.get("creationTimestamp")),
        spec=spec,
        generation=int(meta.get("generation") or 0),
        uid=str(meta.get("uid", "")),
        errors=errors,
    )


# Label keys: optional DNS-subdomain prefix (≤ 253) + "/" + name (≤ 63); values ≤ 63.
_NAME_RE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_PREFIX_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        return f"label key {key!r}: name part must be 1-63 alphanumerics, '-', '_' or '.'"
    if prefix and (len(prefix) > 253 or not _PREFIX_RE.match(prefix)):
        return f"label key {key!r}: prefix must be a DNS subdomain"
    return None


def _label_value_error(value: str) -> str | None:
    if len(value) > 63 or not _NAME_RE.match(value):
        return f"label value {value!r}: at most 63 alphanumerics, '-', '_' or '.'"
    return None


def _validate_selector(sel: LabelSelector, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in sel.match_labels:
        for problem in (_label_key_error(key), _label_value_error(value)):
            if problem:
                errors.append(FieldError(f"{path}.matchLabels", problem))
    for i, req in enumerate(sel.match_expressions):
        p = f"{path}.matchExpressions[{i}]"
        problem = _label_key_error(req.key)
        if problem:
            errors.append(FieldError(f"{p}.key", problem))
        if req.operator not in SELECTOR_OPERATORS:
            errors.append(FieldError(f"{p}.operator", f"must be one of {SELECTOR_OPERATORS}"))
        elif (req.operator in ("In", "NotIn")) != bool(req.values):
            errors.append(
                FieldError(f"{p}.values", "In and NotIn need values; Exists and DoesNotExist none")
            )
        for value in req.values:
            problem = _label_value_error(value)
            if problem:
                errors.append(FieldError(f"{p}.values", problem))
    return errors


def validate(spec: PolicySpec) -> list[FieldError]:
    """Every problem the CRD schema cannot catch (or that slipped past an older CRD)."""
    errors: list[FieldError] = []
    if spec.mode not in MODES:
        errors.append(FieldError("spec.mode", f"must be one of {MODES}"))
    errors += _validate_selector(spec.pods.namespace_selector, "spec.pods.namespaceSelector")
    errors += _validate_selector(spec.pods.pod_selector, "spec.pods.podSelector")
    errors += _validate_selector(spec.nodes.node_selector, "spec.nodes.nodeSelector")
    if spec.enforcing and spec.pods.pod_selector.empty and spec.pods.namespace_selector.empty:
        errors.append(
            FieldError("spec.pods", "an Enforce policy must select pods (empty gates every pod)")
        )
    p = spec.pacing
    if p.max_starting_per_node < 1:
        errors.append(FieldError("spec.pacing.maxStartingPerNode", "must be at least 1"))
    if p.max_starting_per_core < 0:
        errors.append(FieldError("spec.pacing.maxStartingPerCore", "must not be negative"))
    if p.release_per_second <= 0:
        errors.append(FieldError("spec.pacing.releasePerSecond", "must be positive"))
    if p.burst < 1:
        errors.append(FieldError("spec.pacing.burst", "must be at least 1"))
    if p.max_gate_seconds < 1:
        errors.append(FieldError("spec.pacing.maxGateSeconds", "must be at least 1"))
    if p.pod_startup_memory_bytes <= 0:
        errors.append(FieldError("spec.pacing.podStartupMemory", "must be positive"))
    h = spec.headroom
    if h.reopen_margin < 1:
        errors.append(FieldError("spec.headroom.reopenMargin", "must be at least 1"))
    if h.stale_after_s <= 0:
        errors.append(FieldError("spec.headroom.staleAfter", "must be positive"))
    if not 0 <= spec.preparation.lead_time_s <= MAX_PREPARATION_LEAD_TIME_S:
        errors.append(FieldError("spec.preparation.leadTime", "must be between 0s and 1h"))
    return errors
