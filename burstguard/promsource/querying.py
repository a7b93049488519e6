"""Node signals and history from Prometheus, for ``burstguard recommend`` (DESIGN §2.6).

The operator's source of node signals is the agent's summary on each Node object, and only
that: this module is **not** wired into the operator. ``burstguard recommend`` reads
Prometheus through it for the history the Node objects do not keep. This module reads both
the agent's own series (``burstguard_node_*``, exporter/names.py) and node-exporter's
(``node_memory_MemFree_bytes``, ``node_vmstat_pgscan_kswapd``, ``node_vmstat_allocstall_*``)
through prometheus-api-client, and turns them into the same
:class:`~burstguard.api.nodesummary.NodeSummary` the operator already understands
(``signal_source="prometheus"``) and into :class:`~burstguard.core.recommending.NodeHistory`
for ``burstguard recommend``.

Shaped so, and why:

* **Which series is which node** is a label, ``instance`` by default: the chart's agent
  ServiceMonitor and kube-prometheus' node-exporter both relabel ``instance`` to the Node name.
* **Retries** (tenacity): a few quick attempts with exponential backoff on connection errors
  and 5xx answers, then :class:`PrometheusUnavailable`; a query that Prometheus rejects (4xx)
  is not retried.
* **Staleness bound**: each node's newest sample time comes from ``timestamp()`` (an instant
  query's own timestamp is the evaluation time, not the sample's); older than ``staleness_s``
  and the node is left out, so the caller falls back to the Node summary for it.
* **Outage fallback**: :class:`WithFallback`: ``summaries(now)`` returns, per node, the
  fresh Prometheus view or else the Node summary, and says which source served and why.
  Nothing in the operator calls it today; a live Prometheus signal for pacing would start
  here.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import requests
import tenacity
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client import exceptions as prom_exceptions

from burstguard.api import nodesummary
from burstguard.core import recommending
from burstguard.exporter import names as metric_names

log = logging.getLogger(__name__)

DEFAULT_NODE_LABEL: Final = "instance"
DEFAULT_STALENESS_S: Final = 60.0
SIGNAL_SOURCE: Final = "prometheus"


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer (after retries) or answered with an error."""


@dataclass(frozen=True)
class Config:
    """Where Prometheus is and how to read it."""

    url: str
    """Base URL, e.g. ``http://prometheus.monitoring:9090``."""
    node_label: str = DEFAULT_NODE_LABEL
    """Label carrying the Node name; default ``instance``."""
    staleness_s: float = DEFAULT_STALENESS_S
    """Newest sample older than this: the node is not served from Prometheus, seconds."""
    timeout_s: float = 5.0
    """HTTP timeout per attempt, seconds."""
    attempts: int = 3
    """Attempts per query (tenacity), at least 1."""
    backoff_s: float = 0.2
    """First retry wait, doubling, seconds."""
    rate_window: str = "1m"
    """Window of ``rate()`` over node-exporter counters."""


class _Retryable(Exception):
    """A failure worth another attempt."""


def _instant_vector(result: Any) -> list[tuple[dict[str, str], float]]:
    out = []
    for item in result or []:
        try:
            out.append((dict(item.get("metric") or {}), float(item["value"][1])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return out


class PromSource:
    """Reads node signals and history from one Prometheus."""

    def __init__(self, config: Config, client: PrometheusConnect | None = None) -> None:
        self.config = config
        # tenacity is the one retry layer: the client's own urllib3 retries (3, with a
        # 1 s backoff factor) would multiply with it and hide an outage for ~20 s.
        self._client = client or PrometheusConnect(
            url=config.url,
            disable_ssl=True,
            timeout=config.timeout_s,
            retry=urllib3.util.retry.Retry(total=0, raise_on_status=False),
        )
        self.queries = 0
        """Queries sent (each attempt counts)."""

    # -- transport ------------------------------------------------------------------------------

    def _attempt(self, call: Callable[[], Any]) -> Any:
        self.queries += 1
        try:
            return call()
        except requests.exceptions.RequestException as exc:
            raise _Retryable(str(exc)) from exc
        except prom_exceptions.PrometheusApiClientException as exc:
            text = str(exc)
            if "Status Code 5" in text or "status code 5" in text.lower():
                raise _Retryable(text) from exc
            raise PrometheusUnavailable(f"Prometheus rejected the query: {text}") from exc

    def _run(self, call: Callable[[], Any]) -> Any:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.config.attempts)),
            wait=tenacity.wait_exponential(multiplier=self.config.backoff_s, max=5.0),
            retry=tenacity.retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            return retrying(self._attempt, call)
        except _Retryable as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.config.url} unreachable after "
                f"{self.config.attempts} attempts: {exc}"
            ) from exc

    def instant(self, query: str) -> list[tuple[dict[str, str], float]]:
        """An instant query as (labels, value) pairs."""
        return _instant_vector(self._run(lambda: self._client.custom_query(query=query)))

    def range(
        self, query: str, start: float, end: float, step_s: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query as (labels, [(t, value)]) series."""
        begin = datetime.datetime.fromtimestamp(start, tz=datetime.UTC)
        finish = datetime.datetime.fromtimestamp(end, tz=datetime.UTC)
        result = self._run(
            lambda: self._client.custom_query_range(
                query=query, start_time=begin, end_time=finish, step=f"{max(step_s, 0.001):g}s"
            )
        )
        out = []
        for item in result or []:
            points = []
            for t, v in item.get("values") or []:
                try:
                    points.append((float(t), float(v)))
                except (TypeError, ValueError):
                    continue
            out.append((dict(item.get("metric") or {}), points))
        return out

    def up(self) -> bool:
        """True when Prometheus answers a trivial query."""
        try:
            self.instant("vector(1)")
        except PrometheusUnavailable:
            return False
        return True

    # -- queries --------------------------------------------------------------------------------

    def _by_node(self, expr: str, how: str = "max") -> str:
        return f"{how} by ({self.config.node_label}) ({expr})"

    def _per_node(self, expr: str, how: str = "max") -> dict[str, float]:
        label = self.config.node_label
        return {
            labels[label]: value
            for labels, value in self.instant(self._by_node(expr, how))
            if labels.get(label)
        }

    def _rate_expr(self, counter: str, node_exporter: str) -> str:
        agent = f'{metric_names.RECLAIM_RATE}{{counter="{counter}"}}'
        fallback = f"rate({node_exporter}[{self.config.rate_window}])"
        by = f"by ({self.config.node_label})"
        return f"max {by} ({agent}) or sum {by} ({fallback})"

    def summaries(self, now: float) -> dict[str, nodesummary.NodeSummary]:
        """Fresh per-node summaries built from Prometheus (stale nodes left out).

        Raises :class:`PrometheusUnavailable` when Prometheus cannot be read.
        """
        label = self.config.node_label
        seen = self._per_node(f"timestamp({metric_names.HEADROOM_BYTES})")
        headroom = self._per_node(metric_names.HEADROOM_BYTES)
        reclaimable = self._per_node(metric_names.RECLAIMABLE_BYTES)
        exposed = self._per_node(metric_names.SHRINKER_EXPOSED)
        closed = self._per_node(f'{metric_names.NODE_STATE}{{state="Closed"}}')
        kswapd = self._per_node_raw(self._rate_expr("pgscan_kswapd", "node_vmstat_pgscan_kswapd"))
        direct = self._per_node_raw(self._rate_expr("pgscan_direct", "node_vmstat_pgscan_direct"))
        stalls = self._per_node_raw(
            self._rate_expr("allocstall", '{__name__=~"node_vmstat_allocstall.*"}')
        )
        releases: dict[str, str] = {}
        for labels, _ in self.instant(f"{metric_names.KERNEL_INFO}_info"):
            if labels.get(label):
                releases[labels[label]] = labels.get("release", "")
        out: dict[str, nodesummary.NodeSummary] = {}
        for node, sampled_at in seen.items():
            if now - sampled_at > self.config.staleness_s or node not in headroom:
                continue
            rates = nodesummary.ReclaimRates(
                pgscan_kswapd=kswapd.get(node, 0.0),
                pgscan_direct=direct.get(node, 0.0),
                allocstall=stalls.get(node, 0.0),
            )
            reasons = []
            if rates.pgscan_kswapd > 0:
                reasons.append("kswapd-scanning")
            if rates.allocstall > 0:
                reasons.append("direct-reclaim")
            is_closed = closed.get(node, 0.0) >= 1.0 or bool(reasons)
            out[node] = nodesummary.NodeSummary(
                sampled_at=sampled_at,
                state="Closed" if is_closed else "Open",
                headroom_bytes=int(headroom[node]),
                reclaimable_bytes=int(reclaimable.get(node, 0.0)),
                rates=rates,
                reasons=tuple(reasons),
                kernel_release=releases.get(node, ""),
                shrinker_exposed=exposed.get(node, 0.0) >= 1.0,
                signal_source=SIGNAL_SOURCE,
            )
        return out

    def _per_node_raw(self, expr: str) -> dict[str, float]:
        label = self.config.node_label
        return {labels[label]: value for labels, value in self.instant(expr) if labels.get(label)}

    def history(
        self, start: float, end: float, step_s: float
    ) -> tuple[recommending.NodeHistory, ...]:
        """Per-node history between ``start`` and ``end`` at ``step_s`` resolution."""
        label = self.config.node_label
        by = f"by ({label})"
        headroom_expr = (
            f"max {by} ({metric_names.HEADROOM_BYTES}) or "
            f"max {by} (node_memory_MemFree_bytes - on({label}) "
            f"sum {by} (node_zoneinfo_high_pages * 4096))"
        )
        series: dict[str, dict[str, dict[float, float]]] = {}
        for key, expr in (
            ("headroom", headroom_expr),
            ("kswapd", self._rate_expr("pgscan_kswapd", "node_vmstat_pgscan_kswapd")),
            ("allocstall", self._rate_expr("allocstall", '{__name__=~"node_vmstat_allocstall.*"}')),
        ):
            for labels, points in self.range(expr, start, end, step_s):
                node = labels.get(label)
                if node:
                    series.setdefault(node, {}).setdefault(key, {}).update(points)
        exposed = self._per_node(metric_names.SHRINKER_EXPOSED)
        releases = {
            labels[label]: labels.get("release", "")
            for labels, _ in self.instant(f"{metric_names.KERNEL_INFO}_info")
            if labels.get(label)
        }
        out = []
        for node, by_key in sorted(series.items()):
            times = sorted(set().union(*(set(v) for v in by_key.values())))
            head = by_key.get("headroom", {})
            scan = by_key.get("kswapd", {})
            stall = by_key.get("allocstall", {})
            samples = tuple(
                recommending.Sample(
                    at=t,
                    headroom_bytes=head.get(t),
                    pgscan_kswapd=scan.get(t, 0.0),
                    allocstall=stall.get(t, 0.0),
                )
                for t in times
            )
            out.append(
                recommending.NodeHistory(
                    node=node,
                    samples=samples,
                    kernel_release=releases.get(node, ""),
                    shrinker_exposed=(exposed[node] >= 1.0) if node in exposed else None,
                )
            )
        return tuple(out)


class SummarySource(Protocol):
    """Anything that serves per-node summaries (PromSource does)."""

    def summaries(self, now: float) -> Mapping[str, nodesummary.NodeSummary]:
        """Fresh summaries by node name."""


@dataclass(frozen=True)
class Served:
    """What :meth:`WithFallback.summaries` returns."""

    summaries: Mapping[str, nodesummary.NodeSummary]
    """Per node: Prometheus' view when fresh, else the Node summary."""
    from_prometheus: frozenset[str]
    """Nodes served from Prometheus."""
    degraded_reason: str = ""
    """Why Prometheus served nothing (outage), empty when it answered."""


class WithFallback:
    """Prometheus first, the Node summaries where it has nothing fresh or is down."""

    def __init__(
        self,
        primary: SummarySource,
        node_summaries: Callable[[], Mapping[str, nodesummary.NodeSummary]],
    ) -> None:
        self._primary = primary
        self._fallback = node_summaries

    def summaries(self, now: float) -> Served:
        """Merge: a fresh Prometheus summary wins over the Node's own."""
        merged = dict(self._fallback())
        try:
            fresh = self._primary.summaries(now)
        except PrometheusUnavailable as exc:
            log.warning("Prometheus unavailable, using Node summaries: %s", exc)
            return Served(merged, frozenset(), str(exc))
        merged.update(fresh)
        return Served(merged, frozenset(fresh))
