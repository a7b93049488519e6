"""Executing a preparation plan on this node, and measuring what it freed.

The plan (``core.preparation``) says what to do, cheapest first; this module does it and
reports: it writes ``1`` to ``<proc>/sys/vm/compact_memory``, the byte count to
``<cgroup>/memory.reclaim`` (cgroup v2; the kernel returns EAGAIN when it reclaimed less
than asked, which is a partial success, not a failure), and the value to
``<proc>/sys/vm/drop_caches`` (Documentation/admin-guide/sysctl/vm.rst). Headroom is
measured before and after every action, so the acknowledgement says what each action
actually freed. The executor stops once the freed bytes cover the want ("satisfied"), and
re-checks the slab rule right before writing ``drop_caches`` (2/3 never on an exposed or
unknown kernel), so no plan can get past it. DryRun executes nothing and records every
action as ``dry_run``; history records dry runs too, so guardrails behave the same in shadow.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from burstguard.api import preparationack
from burstguard.core import preparation


@dataclass
class Executor:
    """Runs plans against one proc root; keeps the action history for the guardrails."""

    proc_root: str
    """Proc root (``/host/proc`` in the DaemonSet); sysctls are written below it."""
    measure_headroom: Callable[[], int]
    """Reads the node's headroom now, bytes."""
    dry_run: bool = False
    """Report only."""
    vm_sysctl_dir: str = ""
    """Directory holding ``compact_memory`` and ``drop_caches``; empty: ``<proc_root>/sys/vm``.
    The DaemonSet mounts just those two files (hostPath type File), so that the agent can
    write no other sysctl."""
    history: list[preparation.Record] = field(default_factory=list)
    """Past actions (monotonic seconds), trimmed to the last hour."""
    clock: Callable[[], float] = time.monotonic
    """Clock for history and durations."""

    def _write(self, path: str, value: str) -> str:
        """Write ``value``; return an empty string on success, else the error text."""
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}"
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            if exc.errno == errno.EAGAIN and path.endswith("memory.reclaim"):
                return "partial"  # reclaimed less than asked
            return f"{path}: {exc.strerror or exc}"
        finally:
            os.close(fd)
        return ""

    def _target(self, action: preparation.Action) -> tuple[str, str]:
        vm = self.vm_sysctl_dir or os.path.join(self.proc_root, "sys/vm")
        if action.kind == preparation.COMPACT:
            return os.path.join(vm, "compact_memory"), "1"
        if action.kind == preparation.CGROUP_RECLAIM:
            return os.path.join(action.target, "memory.reclaim"), str(action.bytes)
        return os.path.join(vm, "drop_caches"), action.target

    def execute(
        self,
        plan: preparation.Plan,
        request_id: str,
        shrinker_exposed: bool | None,
        wall_now: float,
    ) -> preparationack.PrepareAck:
        """Run ``plan`` in order; return the acknowledgement."""
        now = self.clock()
        self.history = [r for r in self.history if now - r.at < preparation.HOUR_S]
        before = self.measure_headroom()
        current = before
        results: list[preparationack.ActionResult] = [
            preparationack.ActionResult(s.kind, s.target, "skipped", detail=s.reason)
            for s in plan.skipped
        ]
        for action in plan.actions:
            freed_so_far = current - before
            if (
                action.kind != preparation.COMPACT
                and plan.want_bytes > 0
                and freed_so_far >= plan.want_bytes
            ):
                results.append(
                    preparationack.ActionResult(
                        action.kind, action.target, "skipped", 0, 0.0, "satisfied"
                    )
                )
                continue
            if action.kind == preparation.DROP_CACHES and not preparation.drop_caches_value_allowed(
                action.target, shrinker_exposed
            ):
                results.append(
                    preparationack.ActionResult(
                        action.kind, action.target, "skipped", 0, 0.0, "slab-drop-refused"
                    )
                )
                continue
            path, value = self._target(action)
            record_target = action.target if action.kind == preparation.CGROUP_RECLAIM else ""
            self.history.append(preparation.Record(action.kind, self.clock(), record_target))
            if self.dry_run:
                results.append(
                    preparationack.ActionResult(
                        action.kind,
                        action.target,
                        "dry_run",
                        0,
                        0.0,
                        f"would write {value} to {path}",
                    )
                )
                continue
            started = time.monotonic()
            error = self._write(path, value)
            duration = time.monotonic() - started
            after = self.measure_headroom()
            outcome = "failed" if error and error != "partial" else "done"
            detail = error or action.reason
            results.append(
                preparationack.ActionResult(
                    action.kind, action.target, outcome, after - current, round(duration, 6), detail
                )
            )
            current = after
        return preparationack.PrepareAck(
            id=request_id,
            done_at=wall_now,
            dry_run=self.dry_run,
            bytes_wanted=plan.want_bytes,
            freed_bytes=current - before,
            headroom_before_bytes=before,
            headroom_after_bytes=current,
            actions=tuple(results),
        )
