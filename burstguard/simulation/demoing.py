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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from burstguard.core import preparation as planning
from burstguard.core import recommending
from burstguard.devcluster import cluster as devcluster
from burstguard.k8s import apiclient, crds, workloads
from burstguard.simulation import demoreport, monitoring, nodemodel, running

EXIT_OK, EXIT_RUN = 0, 1
UNGUARDED: Final = "without burstguard"
GUARDED: Final = "with burstguard"
TUNED: Final = "with burstguard, tuned"
POLICY_NAME: Final = "demo-burst"
DEFAULTS_LABEL: Final = "chart defaults"
TUNED_LABEL: Final = "tuned"


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
) -> tuple[monitoring.RunResult, dict[str, Any] | None]:
    operator = Operator(cluster.kubeconfig_path, out, namespace)
    served: dict[str, Any] | None = None
    try:
        await asyncio.get_running_loop().run_in_executor(None, operator.wait_ready)
        await crds.install(api)
        await workloads.apply_policy(api, policy)
        served = await workloads.read_policy(api, POLICY_NAME)
        await asyncio.sleep(2.0)  # the operator sees the policy before the burst
        result = await monitoring.follow(api, fleet, cfg, name=name, namespace=namespace, show=show)
        _scrape(operator, out / f"operator-metrics-{namespace}.txt")
    except RuntimeError as exc:
        result = monitoring.RunResult(name=name, pods=cfg.pods, note=f"operator: {exc}")
    finally:
        operator.stop()
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
    planned: list[tuple[str, str, dict[str, Any] | None, str, running.Config]] = [
        (UNGUARDED, "burst-unguarded", None, DEFAULTS_LABEL, agent)
    ]
    if guarded:
        planned.append((GUARDED, "burst-guarded", default_policy(), DEFAULTS_LABEL, agent))
    if tuned:
        acting = dataclasses.replace(agent, dry_run=False, preparation=TUNED_AGENT)
        planned.append((TUNED, "burst-tuned", tuned_policy(cfg), TUNED_LABEL, acting))
    try:
        await asyncio.sleep(1.0)  # first summaries on every node
        for i, (name, namespace, policy, label, config) in enumerate(planned):
            if i:
                fleet.reset(initial)
                fleet.config = config
                await asyncio.sleep(2.0)  # fresh summaries from the reset fleet
            echo(f"run {i + 1}/{len(planned)}: {cfg.pods} pods {name}")
            if policy is None:
                result = await monitoring.follow(
                    api, fleet, cfg, name=name, namespace=namespace, show=show
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
                )
                policies.append(
                    {
                        "run": name,
                        "label": label,
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
            demoreport.write(results, cfg, out, policies=policies, agent=_agent(agent))
    return code, results, fleet


def _timeline(fleet: running.Fleet, path: Path, source: str) -> None:
    path.write_text(recommending.encode_timeline(fleet.timeline(), f"burstguard demo ({source})"))


def _scrape(operator: Operator, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.write_text(operator.metrics())
