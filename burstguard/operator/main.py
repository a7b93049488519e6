"""Running the operator: logging, kopf settings, and the kopf main loop.

``run`` is what ``burstguard operator`` calls. Logs are structured (kopf's JSON format,
one object per line, which also carries burstguard's own loggers) unless plain text is
asked for. kopf runs standalone (no peering) on every replica: which replica writes is
decided by the leader Lease (``operator.leadership``), not by kopf.
"""

from __future__ import annotations

import asyncio
import logging

import kopf

from burstguard.k8s import apiclient, crds
from burstguard.operator import handlers, runtime

assert handlers  # registers the kopf handlers on import


async def install_crds(kubeconfig: str | None) -> list[str]:
    """Install the packaged CRDs (dev clusters and tests)."""
    api = await apiclient.connect(kubeconfig)
    try:
        return await crds.install(api)
    finally:
        await api.close()


def run(
    options: runtime.Options,
    *,
    log_json: bool,
    verbose: bool,
    install_crd: bool,
) -> None:
    """Run until interrupted (SIGINT/SIGTERM)."""
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_json else kopf.LogFormat.FULL,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if install_crd:
        names = asyncio.run(install_crds(options.kubeconfig))
        logging.getLogger(__name__).info("installed CRDs %s", ", ".join(names))
    kopf.run(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(options=options),
    )
