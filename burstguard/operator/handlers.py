"""kopf wiring: start-up, clean-up, and one pacer daemon per BurstPolicy.

kopf gives burstguard the daemon lifecycle per policy; it runs without kopf's peering on every
replica, and a daemon ticks only while its replica holds the leader Lease
(``operator.leadership``), so there is exactly one writer however many replicas serve the
webhook. It is not used
for pods or nodes: those come from the runtime's own informers, so there is no kopf
handler per pod. kopf's daemons put a finalizer on each BurstPolicy so they can be stopped
cleanly; deleting a policy while the operator is down waits until it is back (or the
finalizer is removed by hand); gates are never held by that, since pod creation and
``burstguard release`` do not depend on the operator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Any

import kopf

from burstguard.api import names
from burstguard.k8s import apiclient
from burstguard.operator import pacer
from burstguard.operator import runtime as runtime_

log = logging.getLogger(__name__)


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Authenticate kopf with the operator's own kubeconfig when one was given.

    kopf's default login goes through the kubernetes client, whose default kubeconfig path is
    read from $KUBECONFIG when the client is imported, so ``--kubeconfig`` alone was ignored.
    Without a kubeconfig the operator runs in the cluster on its ServiceAccount, at the address
    the pod's environment names (kopf alone would dial ``kubernetes.default.svc``, which a
    host-network pod without cluster DNS cannot resolve).
    """
    options: runtime_.Options = memo["options"]
    if options.kubeconfig:
        return kopf.login_with_kubeconfig(**kwargs)
    info = kopf.login_with_service_account(**kwargs)
    server = apiclient.in_cluster_server(os.environ)
    if info is None or server is None:
        return info
    return dataclasses.replace(info, server=server)


@kopf.on.startup()
async def start(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    """Connect, start informers, the webhook and metrics, and the janitor."""
    options: runtime_.Options = memo["options"]
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = f"{names.GROUP}/pacer"
    settings.watching.server_timeout = 270
    api = await apiclient.connect(options.kubeconfig)
    rt = runtime_.Runtime(options=options, api=api)
    await rt.start()
    janitor = pacer.Janitor(rt)
    rt.tasks.append(asyncio.create_task(janitor.run(), name="janitor"))
    memo["runtime"] = rt


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop serving and watching."""
    rt: runtime_.Runtime | None = memo.get("runtime")
    if rt is not None:
        await rt.stop()


@kopf.daemon(names.GROUP, names.VERSION, names.POLICY_PLURAL, cancellation_timeout=10.0)
async def pace(name: str, memo: kopf.Memo, stopped: Any, **_: Any) -> None:
    """Pace (Enforce) or shadow (DryRun) one policy while leading, until it is deleted.

    A loop starts fresh at each term (its memory of earlier releases may be stale: another
    leader worked in between) and is abandoned, its unsent writes cancelled, the first tick
    this replica no longer leads.
    """
    rt: runtime_.Runtime = memo["runtime"]
    loop: pacer.PolicyLoop | None = None
    try:
        while not stopped:
            if rt.leading():
                if loop is None:
                    loop = pacer.PolicyLoop(name, rt)
                    log.info("pacer for policy %s started", name)
                try:
                    await loop.tick()
                except Exception as exc:  # a bad tick must not kill the pacer
                    log.exception("pacer tick of %s failed: %s", name, exc)
            elif loop is not None:
                loop.abandon()
                loop = None
                log.info("pacer for policy %s paused: not the leader", name)
            await asyncio.sleep(rt.options.tick_s)
    finally:
        if loop is not None:
            await loop.close()
        log.info("pacer for policy %s stopped", name)
