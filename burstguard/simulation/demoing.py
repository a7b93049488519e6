"""Running the demo: one burst on a SIMULATED fleet, without burstguard, then with it.

The runner brings up the simulated fleet on an already started local control plane, runs
the burst unguarded, resets the fleet to the same node states, starts the real operator
(``burstguard operator`` as a subprocess, its webhook registered by URL), applies the
policy and runs the burst again; ``monitoring`` follows each run and ``demoreport`` writes
the report.

The guarded run uses the **chart's defaults**: the policy names only its mode and selectors,
so every other field is the CRD's default, as for a user who installs the chart and writes
the smallest policy; the report records the spec the API server served. The simulated agent
uses the agent's defaults too: with the chart's ``agent.preparation.enabled: false`` it
plans preparation and reports what it would have done, freeing nothing (the same planner,
guardrails and executor as the real agent: ``simulation.running``). ``--tuned`` adds a third
run with the tuned policy and an acting agent that may drop page cache, labelled as tuned.

``--cronjob`` adds the same burst as a CronJob, three times: without burstguard, with it and
no lead time, and with ``preparation.leadTime`` (:data:`LEAD_TIME_S`). The two guarded runs
differ in nothing but the lead time: the chart's default policy values, and an agent allowed
to drop page cache under its default guardrails (the model frees memory only that way). Each
CronJob is created :data:`CRON_NOTICE_S` or more before its first fire, a whole minute the
forecasting code (``core.forecasting.fires``) computes from the schedule, and the operator
forecasts it from the CronJob it watches, as in a cluster. Each run's makespan is also given
as a ratio to the unguarded run of the same burst, and :func:`goals` checks the lead-time
run against its goal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from burstguard.api import names, units
from burstguard.core import forecasting, recommending
from burstguard.core import preparation as planning
from burstguard.devcluster import cluster as devcluster
from burstguard.k8s import apiclient, crds, webhookconfig, workloads
from burstguard.simulation import demoreport, monitoring, nodemodel, running

EXIT_OK, EXIT_RUN = 0, 1
UNGUARDED: Final = "without burstguard"
GUARDED: Final = "with burstguard"
TUNED: Final = "with burstguard, tuned"
POLICY_NAME: Final = "demo-burst"
DEFAULTS_LABEL: Final = "chart defaults"
TUNED_LABEL: Final = "tuned"
LEAD_TIME_S: Final = 30
"""``preparation.leadTime`` of the CronJob run prepared ahead, seconds."""
CRON_NOTICE_S: Final = LEAD_TIME_S + 15
"""Least time from creating a CronJob to its fire, seconds: the lead time and a margin for
the operator's watch and forecast (the fire is the next whole minute after that)."""
CRON_UNGUARDED: Final = "CronJob, without burstguard"
CRON_GUARDED: Final = "CronJob, with burstguard"
CRON_AHEAD: Final = f"CronJob, with burstguard, leadTime {LEAD_TIME_S}s"
DROPPING_LABEL: Final = "chart defaults, agent may drop page cache"
AHEAD_LABEL: Final = f"chart defaults + leadTime {LEAD_TIME_S}s, agent may drop page cache"
GOAL_RATIO: Final = 1.15
"""Goal: the CronJob burst prepared ahead has at most this makespan ratio to unguarded ..."""
GOAL_RECLAIM_NODES: Final = 1
"""... and at most this many nodes enter reclaim."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """``burstguard operator`` in a subprocess, its webhook registered by URL."""

    def __init__(self, kubeconfig: Path, workdir: Path, namespace: str) -> None:
        self.metrics_port = _free_port()
        self.log = workdir / "operator.log"
        argv = [
            sys.executable,
            "-m",
            "burstguard.cli.main",
            "operator",
            f"--kubeconfig={kubeconfig}",
            "--webhook-host=127.0.0.1",
            f"--webhook-port={_free_port()}",
            f"--cert-dir={workdir / 'operator-certs'}",
            f"--metrics-port={self.metrics_port}",
            "--register-webhook",
            "--install-crd",
            "--standalone",
            f"--namespace={namespace}",
            "--log-format=text",
        ]
        # KUBECONFIG too: kopf's login reads the environment, not the --kubeconfig flag.
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "KUBECONFIG": str(kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=1),
            ):
                return
            time.sleep(0.3)
        raise RuntimeError(f"operator not ready after {timeout_s:.0f} s; see {self.log}")

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as answer:
            return str(answer.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def default_policy() -> dict[str, Any]:
    """The smallest Enforce policy: paced pods on simulated nodes, every other field the
    chart's (CRD) default."""
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": names.POLICY_KIND,
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "mode": "Enforce",
            "pods": {"podSelector": {"matchLabels": {workloads.PACE_LABEL: "true"}}},
            "nodes": {"nodeSelector": {"matchLabels": {running.SIMULATED_LABEL: "true"}}},
        },
    }


def tuned_policy(cfg: monitoring.DemoConfig) -> dict[str, Any]:
    """The tuned policy: one start per core, faster reopening and preparation, the pods'
    own memory as their cost."""
    body = default_policy()
    body["spec"] = {
        **body["spec"],
        "pacing": {
            "maxStartingPerNode": cfg.cores,
            "maxStartingPerCore": 1.0,
            "releasePerSecond": 100,
            "burst": 100,
            "podStartupMemory": cfg.pod_memory,
        },
        "headroom": {"reopenHold": "2s", "staleAfter": "30s"},
        "preparation": {"enabled": True, "cooldown": "10s"},
    }
    return body


TUNED_AGENT: Final = planning.Params(drop_page_cache=True, drop_cache_cooldown_s=10.0)
"""The tuned run's agent guardrails: drop_caches allowed, 10 s cooldown (default: off, 300 s)."""
DROPPING_AGENT: Final = planning.Params(drop_page_cache=True)
"""The CronJob runs' agent guardrails: drop_caches allowed, every other guardrail (300 s
cooldown, 6 actions an hour) the agent's default."""


def ahead_policy() -> dict[str, Any]:
    """The chart's default policy with ``preparation.leadTime`` set."""
    body = default_policy()
    body["spec"] = {**body["spec"], "preparation": {"leadTime": f"{LEAD_TIME_S}s"}}
    return body


def cron_schedule(now: float, notice_s: float = CRON_NOTICE_S) -> monitoring.Schedule:
    """A daily schedule (UTC) whose next fire is the first whole minute at least
    ``notice_s`` after ``now``; the fire is computed, and checked, by the forecasting code."""
    [minute] = forecasting.fires("* * * * *", "Etc/UTC", now + notice_s, now + notice_s + 60)[:1]
    at = datetime.datetime.fromtimestamp(minute, tz=datetime.UTC)
    cron = f"{at.minute} {at.hour} * * *"
    first = forecasting.fires(cron, "Etc/UTC", now, now + 86_400, limit=1)
    if first != (minute,):
        raise RuntimeError(f"schedule {cron!r} fires at {first}, not at {minute}")
    return monitoring.Schedule(cron, minute)


@dataclasses.dataclass(frozen=True)
class Planned:
    """One run of the demo."""

    name: str
    namespace: str
    policy: dict[str, Any] | None
    """None: no operator (unguarded)."""
    label: str
    agent: running.Config
    cron: bool = False
    """Launch the burst as a CronJob (True) or a Job at once."""


def plan(
    cfg: monitoring.DemoConfig, agent: running.Config, *, guarded: bool, tuned: bool, cron: bool
) -> list[Planned]:
    """The runs, in order (pure)."""
    out = [Planned(UNGUARDED, "burst-unguarded", None, DEFAULTS_LABEL, agent)]
    if guarded:
        out.append(Planned(GUARDED, "burst-guarded", default_policy(), DEFAULTS_LABEL, agent))
    if tuned:
        acting = dataclasses.replace(agent, dry_run=False, preparation=TUNED_AGENT)
        out.append(Planned(TUNED, "burst-tuned", tuned_policy(cfg), TUNED_LABEL, acting))
    if cron:
        dropping = dataclasses.replace(agent, dry_run=False, preparation=DROPPING_AGENT)
        out.append(Planned(CRON_UNGUARDED, "cron-unguarded", None, DEFAULTS_LABEL, agent, True))
        if guarded:
            out += [
                Planned(
                    CRON_GUARDED, "cron-guarded", default_policy(), DROPPING_LABEL, dropping, True
                ),
                Planned(CRON_AHEAD, "cron-ahead", ahead_policy(), AHEAD_LABEL, dropping, True),
            ]
    return out


def compare(results: list[monitoring.RunResult]) -> None:
    """Fill each run's makespan ratio to the unguarded run of the same burst (Job or
    CronJob), all from this one invocation."""
    base: dict[bool, float | None] = {}
    for r in results:
        cron = r.launched != "Job"
        if r.name in (UNGUARDED, CRON_UNGUARDED):
            base[cron] = r.modelled_makespan_s
        unguarded = base.get(cron)
        if unguarded and r.modelled_makespan_s is not None:
            r.makespan_ratio = round(r.modelled_makespan_s / unguarded, 2)


def goals(results: list[monitoring.RunResult], nodes: int) -> list[str]:
    """The CronJob goal, met or missed, in words (empty without a lead-time run)."""
    out = []
    for r in results:
        if r.name != CRON_AHEAD:
            continue
        met = (
            r.completed
            and r.makespan_ratio is not None
            and r.makespan_ratio <= GOAL_RATIO
            and r.nodes_entered_reclaim <= GOAL_RECLAIM_NODES
        )
        ratio = "-" if r.makespan_ratio is None else f"{r.makespan_ratio:.2f}x"
        out.append(
            f"goal {'met' if met else 'MISSED'} (modelled): {r.name} makespan {ratio} the "
            f"unguarded CronJob's (goal <= {GOAL_RATIO}x), {r.nodes_entered_reclaim} of "
            f"{nodes} nodes entered reclaim (goal <= {GOAL_RECLAIM_NODES})"
        )
    return out


def _agent(config: running.Config) -> dict[str, Any]:
    return {
        "dry_run": config.dry_run,
        "preparation": dataclasses.asdict(config.preparation),
        "note": "dry run: plans and reports, frees nothing (chart default "
        "agent.preparation.enabled: false)"
        if config.dry_run
        else "acting: executes the planned actions on the model",
    }


async def _guarded(
    api: apiclient.Api,
    fleet: running.Fleet,
    cfg: monitoring.DemoConfig,
    cluster: devcluster.Cluster,
    out: Path,
    *,
    name: str,
    namespace: str,
    policy: dict[str, Any],
    show: Callable[[str], None],
    cron: bool = False,
) -> tuple[monitoring.RunResult, dict[str, Any] | None]:
    operator = Operator(cluster.kubeconfig_path, out, namespace)
    served: dict[str, Any] | None = None
    try:
        await asyncio.get_running_loop().run_in_executor(None, operator.wait_ready)
        await crds.install(api)
        await workloads.apply_policy(api, policy)
        served = await workloads.read_policy(api, POLICY_NAME)
        await asyncio.sleep(2.0)  # the operator sees the policy before the burst
        schedule = cron_schedule(time.time()) if cron else None
        result = await monitoring.follow(
            api, fleet, cfg, name=name, namespace=namespace, show=show, schedule=schedule
        )
        _scrape(operator, out / f"operator-metrics-{namespace}.txt")
    except RuntimeError as exc:
        result = monitoring.RunResult(name=name, pods=cfg.pods, note=f"operator: {exc}")
    finally:
        operator.stop()
        # The configuration outlives the operator: without it the next unguarded run's
        # creates would each try (and fail open on) a webhook that is gone.
        with contextlib.suppress(apiclient.ApiError):
            await webhookconfig.remove(api)
    return result, served


async def _clear(
    api: apiclient.Api, namespace: str, timeout_s: float, show: Callable[[str], None]
) -> None:
    """Delete a run's namespace and wait: the next burst must not queue behind its pods."""
    await workloads.delete_namespace(api, namespace)
    began = time.monotonic()
    while not await workloads.namespace_gone(api, namespace):
        show(f"clearing {namespace} ({time.monotonic() - began:.0f} s)")
        if time.monotonic() - began > timeout_s:
            break
        await asyncio.sleep(1.0)


async def run(
    cfg: monitoring.DemoConfig,
    out: Path,
    cluster: devcluster.Cluster,
    *,
    guarded: bool,
    tuned: bool,
    cron: bool = False,
    echo: Callable[[str], None],
    show: Callable[[str], None],
) -> tuple[int, list[monitoring.RunResult], running.Fleet]:
    """Every run of the demo; writes the report; returns the exit code, results and fleet."""
    node_names = cluster.create_nodes(
        cfg.nodes,
        prefix="sim-node-",
        cpu=str(cfg.cores),
        memory=cfg.memory,
        labels={running.SIMULATED_LABEL: "true"},
    )
    profile = nodemodel.FleetProfile(
        memory_bytes=units.quantity_bytes(cfg.memory),
        cores=float(cfg.cores),
        exposed_fraction=cfg.exposed_fraction,
    )
    initial = nodemodel.fleet(
        cfg.nodes, profile, random.Random(cfg.seed), time.time(), prefix="sim-node-"
    )
    assert set(initial) == set(node_names)
    api = await apiclient.connect(str(cluster.kubeconfig_path))
    agent = running.Config(default_demand_bytes=units.quantity_bytes(cfg.pod_memory), seed=cfg.seed)
    fleet = running.Fleet(api, initial, agent)
    stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(stop))
    results: list[monitoring.RunResult] = []
    policies: list[dict[str, Any]] = []
    code = EXIT_OK
    planned = plan(cfg, agent, guarded=guarded, tuned=tuned, cron=cron)
    try:
        await asyncio.sleep(1.0)  # first summaries on every node
        for i, step in enumerate(planned):
            name, namespace, policy, config = step.name, step.namespace, step.policy, step.agent
            if i:
                fleet.reset(initial)
                fleet.config = config
                await asyncio.sleep(2.0)  # fresh summaries from the reset fleet
            echo(f"run {i + 1}/{len(planned)}: {cfg.pods} pods {name}")
            if policy is None:
                schedule = cron_schedule(time.time()) if step.cron else None
                result = await monitoring.follow(
                    api, fleet, cfg, name=name, namespace=namespace, show=show, schedule=schedule
                )
            else:
                result, served = await _guarded(
                    api,
                    fleet,
                    cfg,
                    cluster,
                    out,
                    name=name,
                    namespace=namespace,
                    policy=policy,
                    show=show,
                    cron=step.cron,
                )
                policies.append(
                    {
                        "run": name,
                        "label": step.label,
                        "name": POLICY_NAME,
                        "spec": (served or {}).get("spec", policy["spec"]),
                        "served": served is not None,
                        "agent": _agent(config),
                    }
                )
            results.append(result)
            _timeline(fleet, out / f"timeline-{namespace.removeprefix('burst-')}.json", name)
            if not result.completed:
                code = EXIT_RUN
            if i + 1 < len(planned):
                if policy is not None:
                    await workloads.delete_policy(api, POLICY_NAME)
                await _clear(api, namespace, cfg.timeout_s, show)
    finally:
        stop.set()
        await fleet_task
        await api.close()
        if results:
            compare(results)
            demoreport.write(
                results,
                cfg,
                out,
                policies=policies,
                agent=_agent(agent),
                goals=goals(results, cfg.nodes),
            )
    return code, results, fleet


def _timeline(fleet: running.Fleet, path: Path, source: str) -> None:
    path.write_text(recommending.encode_timeline(fleet.timeline(), f"burstguard demo ({source})"))


def _scrape(operator: Operator, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.write_text(operator.metrics())
