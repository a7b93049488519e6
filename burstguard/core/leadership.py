"""Leader election decisions by Lease, with client-go's ``tools/leaderelection`` semantics.

Several operator replicas serve the webhook (gating is stateless), but only one may write:
release gates, label nodes, ask nodes to prepare, write policy status. The writer is whoever
holds a ``coordination.k8s.io`` Lease. A Lease and not kopf's peering: kopf's peering picks
the operator with the highest priority and, between equal priorities, lets both run with a
warning; it has no expiry a replica can count on, so it cannot promise one writer. A Lease
has a holder, a duration and optimistic concurrency (resourceVersion), which is all that is
needed to make "at most one writer" a matter of arithmetic on local time.

The rules, as in client-go:

- A candidate may take the Lease when it is released (empty holder) or when its record has
  not changed for ``lease_duration_s`` *as seen on the candidate's own clock* (the record's
  timestamps are informational: clocks of two machines are not compared).
- The holder renews every ``retry_period_s``. If it has not renewed for ``renew_deadline_s``
  it stops leading at once. Since ``renew_deadline_s < lease_duration_s``, the old holder
  has stopped before anyone else may take over, so there are never two writers.
- A holder that stops cleanly releases the Lease (empty holder, duration 1 s) so a standby
  takes over within one retry period instead of one lease duration.

Everything here is pure: the caller reads and writes the Lease and passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

JITTER_FACTOR = 1.2
"""client-go's check: the renew deadline must leave room for one jittered retry period."""


class TimingError(ValueError):
    """Lease timings that would allow two leaders or a leader that never renews in time."""


@dataclass(frozen=True)
class Timing:
    """Lease timings, seconds (client-go defaults)."""

    lease_duration_s: float = 15.0
    """How long a standby waits, after the record last changed, before taking the Lease."""
    renew_deadline_s: float = 10.0
    """How long the holder keeps leading without a successful renewal."""
    retry_period_s: float = 2.0
    """Time between two attempts to take or renew the Lease."""

    def __post_init__(self) -> None:
        if min(self.lease_duration_s, self.renew_deadline_s, self.retry_period_s) <= 0:
            raise TimingError("lease duration, renew deadline and retry period must be > 0")
        if self.lease_duration_s <= self.renew_deadline_s:
            raise TimingError(
                f"lease duration ({self.lease_duration_s:g}s) must exceed the renew deadline "
                f"({self.renew_deadline_s:g}s), or a standby could lead while the old holder "
                "still writes"
            )
        if self.renew_deadline_s <= JITTER_FACTOR * self.retry_period_s:
            raise TimingError(
                f"renew deadline ({self.renew_deadline_s:g}s) must exceed {JITTER_FACTOR} x "
                f"the retry period ({self.retry_period_s:g}s)"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that election uses (times are epoch seconds)."""

    holder: str
    """``holderIdentity``; empty when released."""
    lease_duration_s: int
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observed:
    """The last Lease record this replica saw, and when (on its clock) it last changed."""

    record: LeaseRecord | None
    changed_at: float


def observe(previous: Observed | None, record: LeaseRecord | None, now: float) -> Observed:
    """Fold a fresh read of the Lease into what this replica knows.

    The clock starts again only when the record differs from the last one seen: a holder
    that renews changes ``renew_time`` every retry period, a dead holder changes nothing.
    """
    if previous is not None and previous.record == record:
        return previous
    return Observed(record=record, changed_at=now)


def held_by_other(identity: str, observed: Observed, now: float) -> bool:
    """Whether another replica holds a Lease that has not expired on this replica's clock."""
    rec = observed.record
    return (
        rec is not None
        and rec.holder not in ("", identity)
        and now < observed.changed_at + rec.lease_duration_s
    )


def attempt(identity: str, observed: Observed, now: float, timing: Timing) -> LeaseRecord | None:
    """The record to write to take or renew the Lease, or None while another holds it.

    Writing it must be conditional on the version that was read (an update with the read
    resourceVersion, or a create when there was none): if two candidates try at once, one
    write fails and that candidate stays a standby.
    """
    if held_by_other(identity, observed, now):
        return None
    rec = observed.record
    duration = max(1, round(timing.lease_duration_s))
    if rec is not None and rec.holder == identity:
        return replace(rec, renew_time=now, lease_duration_s=duration)
    return LeaseRecord(
        holder=identity,
        lease_duration_s=duration,
        acquire_time=now,
        renew_time=now,
        transitions=0 if rec is None else rec.transitions + 1,
    )


def leading(renewed_at: float | None, now: float, timing: Timing) -> bool:
    """Whether this replica may write: it renewed less than ``renew_deadline_s`` ago.

    ``renewed_at`` is when the last successful take-or-renew was *sent* (not when its answer
    came), so a slow answer never extends the time this replica believes it leads.
    """
    return renewed_at is not None and 0 <= now - renewed_at < timing.renew_deadline_s


def release(identity: str, record: LeaseRecord | None, now: float) -> LeaseRecord | None:
    """The record that hands the Lease back on a clean stop, or None when not ours."""
    if record is None or record.holder != identity:
        return None
    return replace(record, holder="", lease_duration_s=1, renew_time=now)
