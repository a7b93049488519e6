"""Publishing the Node summary: when to publish (pure) and a thread that does the writes.

When to publish is ``core.publication.due``: at once on a state change or a headroom change,
otherwise every ``interval_s``. The writes happen on their own thread
so a slow API server never stalls the 4 Hz sampler; only the newest pending summary is
written (older ones are superseded, never queued).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from burstguard.api import nodesummary
from burstguard.k8s import nodetypes


def condition_for(
    summary: nodesummary.NodeSummary, last_transition: float, now_wall: float
) -> nodetypes.Condition:
    """The ``BurstguardHeadroom`` condition that goes with a summary."""
    is_open = summary.state == "Open"
    reasons = ", ".join(summary.reasons) or "quiet"
    message = (
        f"{summary.state}: {reasons}; headroom {summary.headroom_bytes / 2**20:.0f} MiB, "
        f"pgscan_kswapd {summary.rates.pgscan_kswapd:.0f}/s"
    )
    if summary.degraded_reason:
        message += f"; degraded: {summary.degraded_reason}"
    return nodetypes.Condition(
        status=is_open,
        reason="HeadroomAvailable" if is_open else "HeadroomShort",
        message=message,
        last_transition=last_transition,
        heartbeat=now_wall,
    )


class Writer(Protocol):
    """What the publisher needs from ``k8s.nodes.NodeWriter``."""

    def publish(self, summary_json: str, condition: nodetypes.Condition) -> None:
        """Write summary and condition."""


class Publisher:
    """Background thread writing the newest submitted summary."""

    def __init__(
        self,
        writer: Writer,
        on_published: Callable[[nodesummary.NodeSummary, float], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._writer = writer
        self._on_published = on_published
        self._on_error = on_error
        self._cv = threading.Condition()
        self._pending: tuple[nodesummary.NodeSummary, nodetypes.Condition] | None = None
        self._stopped = False
        self.published = 0
        self.errors = 0
        self.last_error = ""
        self.last_published_at: float | None = None
        """time.monotonic() of the last successful write (None: none yet)."""
        self._thread = threading.Thread(target=self._loop, name="publisher", daemon=True)
        self._thread.start()

    def submit(self, summary: nodesummary.NodeSummary, condition: nodetypes.Condition) -> None:
        """Hand over a summary; it replaces one not yet written."""
        with self._cv:
            self._pending = (summary, condition)
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stopped:
                    self._cv.wait()
                if self._stopped and self._pending is None:
                    return
                assert self._pending is not None
                summary, condition = self._pending
                self._pending = None
            try:
                self._writer.publish(nodesummary.encode(summary), condition)
                self.published += 1
                self.last_published_at = time.monotonic()
                if self._on_published is not None:
                    self._on_published(summary, time.monotonic())
            except Exception as exc:  # reported in metrics and logs; the next submit retries
                self.errors += 1
                self.last_error = str(exc)
                if self._on_error is not None:
                    self._on_error(str(exc))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is pending, then stop."""
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout=timeout_s)
