"""The ledger of starts: the one record of pods heading to a node or starting on it.

Every start costs its node memory the node's summary cannot show yet, so the pacer, the
janitor, the metrics and shadow mode must agree on which pods those are. They all read this
ledger; nobody keeps a second count. It is shaped after kube-scheduler's cache
(``pkg/scheduler/backend/cache/cache.go``: ``AssumePod``, ``ForgetPod``, ``AddPod``): one
map of entries, transitions named after what happened, an entry moved (not copied) when the
pod lands elsewhere than assumed.

A pod moves **released -> bound -> started**, or leaves at any point (**finished**):

* ``release`` (the pacer or the janitor decided to remove the gate: an *assumed* release,
  pinned to its target node or not) and ``forget`` (the patch failed, or the watch never
  showed the pod ungated: the assumption is undone and the pod can be planned again);
* ``confirm`` (the watch shows the pod ungated and unbound: a *confirmed* release);
* ``bind`` (the watch shows the pod bound to a node with containers still starting, paced
  or not: every start costs memory), moving the entry to the node it really landed on;
* ``start`` (every container started): the memory is now in the node's working set, but a
  summary sampled before that moment does not show it, so the entry stays, stamped;
* ``summarized`` (a summary sampled at ``sampled_at``): started entries older than it are
  shown by it and leave; ``finish`` (the pod finished or is gone) removes the entry.

A pod's memory is counted once, on one node, in the stage it is in: released toward the
node, bound there, or started after the node's summary was sampled. Memory is the pod's
request; ``None`` when it requests none (readers apply the policy's ``podStartupMemory``).
Nothing here does I/O; time is an argument. Property tests: tests/unit/test_ledger.py.
"""

from __future__ import annotations

import collections
from collections.abc import Container, Iterator
from dataclasses import dataclass, replace
from typing import Final

RELEASED: Final = "released"
BOUND: Final = "bound"
STARTED: Final = "started"
STAGES: Final = (RELEASED, BOUND, STARTED)


@dataclass(frozen=True, slots=True)
class Entry:
    """One pod in the ledger."""

    key: str
    """``namespace/name``."""
    stage: str
    """``released``, ``bound`` or ``started``."""
    node: str | None
    """Released: the pin target (None = the scheduler chooses); bound and started: the node."""
    memory_bytes: int | None
    """The pod's memory request, bytes; None when it requests none."""
    policy: str | None
    """The policy that gated it (None for pods no policy paced)."""
    at: float
    """When the entry entered its stage (for an assumed release: when its patch was sent)."""
    confirmed: bool = True
    """False for a release the watch has not shown yet (the pod still shows the gate)."""


class Ledger:
    """Entries by pod, indexed by node and, for unplaced releases, by policy."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._on_node: dict[str, dict[str, Entry]] = collections.defaultdict(dict)
        self._unplaced: dict[str | None, dict[str, Entry]] = collections.defaultdict(dict)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _drop(self, key: str) -> Entry | None:
        old = self.entries.pop(key, None)
        if old is None:
            return None
        if old.node is not None:
            node_bucket = self._on_node.get(old.node)
            if node_bucket is not None:
                node_bucket.pop(key, None)
                if not node_bucket:
                    del self._on_node[old.node]
        else:
            policy_bucket = self._unplaced.get(old.policy)
            if policy_bucket is not None:
                policy_bucket.pop(key, None)
                if not policy_bucket:
                    del self._unplaced[old.policy]
        return old

    def _put(self, entry: Entry) -> None:
        self._drop(entry.key)
        self.entries[entry.key] = entry
        if entry.node is not None:
            self._on_node[entry.node][entry.key] = entry
        else:
            self._unplaced[entry.policy][entry.key] = entry

    # -- transitions -----------------------------------------------------------------------------

    def release(
        self,
        key: str,
        *,
        node: str | None,
        memory_bytes: int | None,
        policy: str | None,
        now: float,
    ) -> None:
        """The gate is being removed (assumed until the watch shows it); ``node`` = pin."""
        old = self.entries.get(key)
        if old is not None and old.stage != RELEASED:
            return  # the watch is ahead of the decision: it knows better
        self._put(Entry(key, RELEASED, node, memory_bytes, policy, now, confirmed=False))

    def patched(self, key: str, now: float) -> None:
        """The release patch was written: its confirmation timeout counts from now."""
        old = self.entries.get(key)
        if old is not None and old.stage == RELEASED and not old.confirmed:
            self._put(replace(old, at=now))

    def forget(self, key: str) -> None:
        """Undo an assumed release (patch failed, or never confirmed): plan the pod again."""
        old = self.entries.get(key)
        if old is not None and old.stage == RELEASED and not old.confirmed:
            self._drop(key)

    def confirm(
        self,
        key: str,
        *,
        node: str | None,
        memory_bytes: int | None,
        policy: str | None,
        now: float,
    ) -> None:
        """The watch shows the pod ungated and not yet bound (``node`` = its pin, if any)."""
        old = self.entries.get(key)
        if old is not None and old.stage != RELEASED:
            return
        at = old.at if old is not None and old.confirmed else now
        self._put(Entry(key, RELEASED, node, memory_bytes, policy, at, confirmed=True))

    def bind(self, key: str, *, node: str, memory_bytes: int | None, now: float) -> None:
        """The watch shows the pod bound to ``node`` and starting (moved there if assumed
        elsewhere)."""
        old = self.entries.get(key)
        if old is not None and old.stage == BOUND and old.node == node:
            return
        policy = old.policy if old is not None else None
        self._put(Entry(key, BOUND, node, memory_bytes, policy, now))

    def start(self, key: str, *, now: float) -> None:
        """Every container of the pod started: counted until a later summary shows it."""
        old = self.entries.get(key)
        if old is None or old.stage == STARTED:
            return
        if old.node is None:
            self._drop(key)  # never seen bound: no node to count it against
            return
        self._put(replace(old, stage=STARTED, at=now, confirmed=True))

    def finish(self, key: str) -> None:
        """The pod finished or is gone."""
        self._drop(key)

    def summarized(self, node: str, sampled_at: float) -> None:
        """A summary of ``node`` sampled at ``sampled_at`` shows the pods started before it."""
        for entry in list(self._on_node.get(node, {}).values()):
            if entry.stage == STARTED and entry.at < sampled_at:
                self._drop(entry.key)

    def expire(
        self,
        now: float,
        *,
        assumed_for_s: float,
        started_for_s: float,
        keep: Container[str] = (),
    ) -> list[str]:
        """Forget assumed releases older than ``assumed_for_s`` (a lost patch or watch event:
        the pod is planned again) unless in ``keep`` (patch still queued), and started entries
        older than ``started_for_s`` (every summary since shows them). Returns the keys whose
        release was forgotten."""
        forgotten: list[str] = []
        for entry in list(self.entries.values()):
            if entry.stage == RELEASED and not entry.confirmed:
                if now - entry.at > assumed_for_s and entry.key not in keep:
                    self._drop(entry.key)
                    forgotten.append(entry.key)
            elif entry.stage == STARTED and now - entry.at > started_for_s:
                self._drop(entry.key)
        return forgotten

    # -- readers ---------------------------------------------------------------------------------

    def assumed(self, key: str) -> bool:
        """A release of the pod is under way: do not plan it again."""
        entry = self.entries.get(key)
        return entry is not None and entry.stage == RELEASED and not entry.confirmed

    def on_node(self, node: str) -> Iterator[Entry]:
        """Entries counted against ``node``."""
        return iter(self._on_node.get(node, {}).values())

    def starting(self, node: str) -> int:
        """Pods released toward ``node`` or bound there and still starting."""
        return sum(1 for e in self.on_node(node) if e.stage != STARTED)

    def committed_bytes(self, node: str, *, sampled_at: float | None, default_bytes: int) -> int:
        """Memory of the starts ``node``'s summary sampled at ``sampled_at`` cannot show yet:
        released toward it, bound there, or started at or after ``sampled_at``, bytes."""
        total = 0
        for e in self.on_node(node):
            if e.stage == STARTED and sampled_at is not None and e.at < sampled_at:
                continue
            total += default_bytes if e.memory_bytes is None else e.memory_bytes
        return total

    def unplaced(self, policy: str | None) -> list[Entry]:
        """Releases of ``policy`` with no node yet (the scheduler will choose)."""
        return list(self._unplaced.get(policy, {}).values())

    def pinned_unbound(self) -> Iterator[Entry]:
        """Confirmed releases pinned to a node and not yet bound there."""
        for bucket in self._on_node.values():
            for e in bucket.values():
                if e.stage == RELEASED and e.confirmed:
                    yield e

    def counts(self) -> dict[str, int]:
        """Entries per stage (``released`` counts assumed and confirmed)."""
        out = dict.fromkeys(STAGES, 0)
        for e in self.entries.values():
            out[e.stage] += 1
        return out
