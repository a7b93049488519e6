"""Policy values that are each in range but unsafe together, or unsafe with this operator.

The CRD's CEL rules refuse what the spec alone shows (a preparation cooldown under 1 s, a
maxGateSeconds shorter than one release interval). What depends on the operator's flags or
on the nodes cannot be a CEL rule; the pacer reports it as ``Ready=False`` with one of these
reasons, visible in ``kubectl get burstpolicies``, and keeps pacing (the values still work,
just not as the user meant): a degraded mode that says so, never a silent one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from burstguard.api import policy as policy_api


@dataclass(frozen=True)
class Refusal:
    reason: str
    """CamelCase, shown in the Reason column."""
    message: str


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f}Mi"


def refusals(
    spec: policy_api.PolicySpec, *, tick_s: float, node_memory: Mapping[str, int | None]
) -> tuple[Refusal, ...]:
    """Every unsafe combination of ``spec`` with the operator's tick and the guarded nodes'
    allocatable memory (``node_memory``: node name -> bytes, None when unknown)."""
    out: list[Refusal] = []
    p, h = spec.pacing, spec.headroom
    if spec.preparation.enabled and spec.preparation.cooldown_s < tick_s:
        out.append(
            Refusal(
                "CooldownUnderTick",
                f"preparation.cooldown {spec.preparation.cooldown_s:g}s is shorter than the "
                f"operator's tick ({tick_s:g}s): a short node would be asked again every tick",
            )
        )
    interval = 1.0 / p.release_per_second if p.release_per_second > 0 else float("inf")
    if p.max_gate_seconds < max(interval, tick_s):
        out.append(
            Refusal(
                "MaxGateUnderReleaseInterval",
                f"maxGateSeconds {p.max_gate_seconds} is shorter than one release interval "
                f"({interval:g}s) or tick ({tick_s:g}s): every queued pod would go overdue",
            )
        )
    if 0 < h.close_below_bytes < p.pod_startup_memory_bytes:
        out.append(
            Refusal(
                "CloseBelowUnderStartup",
                f"headroom.closeBelow ({_mib(h.close_below_bytes)}) is less than one pod start "
                f"({_mib(p.pod_startup_memory_bytes)}): an open node could take a start it "
                "has no room for",
            )
        )
    reopen_at = spec.close_below_bytes * h.reopen_margin
    known = {n: m for n, m in node_memory.items() if m is not None}
    never = sorted(n for n, m in known.items() if m < reopen_at)
    if never:
        out.append(
            Refusal(
                "CannotReopen",
                f"{len(never)} of {len(known)} guarded nodes (e.g. {never[0]}) have less "
                f"allocatable memory than the reopen level closeBelow x reopenMargin = "
                f"{_mib(reopen_at)}: once closed they would never reopen",
            )
        )
    return tuple(out)
