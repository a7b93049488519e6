"""The election loop: take or renew the Lease every retry period, step down on time.

Every replica runs one :class:`Elector`. The leader-only work (pacer loops, janitor) asks
:meth:`Elector.leading` before each step; the answer is computed from the time of the last
successful renewal and the clock (``core.leadership.leading``), not from a flag this loop
sets, so a loop stalled by a slow API server cannot leave a replica believing it leads. When
leadership ends, the ``on_lost`` callbacks run at once to cancel writes still queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from burstguard.core import leadership
from burstguard.exporter import operator_metrics as metrics
from burstguard.k8s import apiclient, leases

log = logging.getLogger(__name__)


@dataclass
class Elector:
    """One replica's side of the election."""

    api: apiclient.Api
    namespace: str
    name: str
    identity: str
    timing: leadership.Timing = field(default_factory=leadership.Timing)
    clock: Callable[[], float] = time.time
    on_lost: list[Callable[[], None]] = field(default_factory=list)
    on_won: list[Callable[[], None]] = field(default_factory=list)
    observed: leadership.Observed | None = None
    renewed_at: float | None = None
    _last: leases.Read | None = None
    _was_leading: bool = False

    def leading(self) -> bool:
        """Whether this replica may write now."""
        return leadership.leading(self.renewed_at, self.clock(), self.timing)

    def _edge(self) -> None:
        """Run the callbacks when leadership started or ended since the last call."""
        now_leading = self.leading()
        if now_leading == self._was_leading:
            return
        self._was_leading = now_leading
        metrics.LEADER.set(1 if now_leading else 0)
        if now_leading:
            log.info("leading: holder of lease %s/%s", self.namespace, self.name)
            callbacks = self.on_won
        else:
            log.warning("stopped leading: lease %s/%s not renewed", self.namespace, self.name)
            callbacks = self.on_lost
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("leadership callback failed")

    async def step(self) -> None:
        """One attempt to take or renew the Lease."""
        sent_at = self.clock()
        timeout = self.timing.retry_period_s
        try:
            self._last = await leases.read(self.api, self.namespace, self.name, timeout)
            self.observed = leadership.observe(self.observed, self._last.record, self.clock())
            record = leadership.attempt(self.identity, self.observed, self.clock(), self.timing)
            if record is None:
                return
            await leases.write(
                self.api,
                self.namespace,
                self.name,
                record,
                version=self._last.version,
                timeout=timeout,
            )
            self.renewed_at = sent_at
            self.observed = leadership.observe(self.observed, record, self.clock())
        except leases.Conflict:
            log.info("lease %s/%s was written by another replica first", self.namespace, self.name)
        except (apiclient.ApiError, OSError, TimeoutError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
        finally:
            self._edge()

    async def run(self) -> None:
        """Take part in the election until cancelled."""
        while True:
            started = self.clock()
            await self.step()
            # Wake up in time to notice the deadline even when the API does not answer.
            wait = self.timing.retry_period_s - (self.clock() - started)
            if self.renewed_at is not None and self._was_leading:
                wait = min(wait, self.renewed_at + self.timing.renew_deadline_s - self.clock())
            await asyncio.sleep(max(0.05, wait))
            self._edge()

    async def release(self) -> None:
        """Hand the Lease back (clean stop) so a standby takes over within a retry period."""
        was_leading = self.leading()
        self.renewed_at = None
        self._edge()
        if not was_leading or self._last is None:
            return
        try:
            current = await leases.read(
                self.api, self.namespace, self.name, self.timing.retry_period_s
            )
            record = leadership.release(self.identity, current.record, self.clock())
            if record is not None:
                await leases.write(
                    self.api,
                    self.namespace,
                    self.name,
                    record,
                    version=current.version,
                    timeout=self.timing.retry_period_s,
                )
                log.info("released lease %s/%s", self.namespace, self.name)
        except (leases.Conflict, apiclient.ApiError, OSError, TimeoutError) as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
