"""``burstguard release --all [--policy P]``: remove every scheduling gate burstguard owns.

For uninstalling (the Helm pre-delete hook runs it) and for emergencies: it needs no
running operator, only API access. Each gate goes with the same patch the pacer uses (a
``test`` op on burstguard's gate at its index), so other controllers' gates stay.

Exit codes: 0 every gate released (or none found); 1 some releases failed;
2 usage error; 3 no usable kubeconfig or API.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Final

import click

from burstguard.k8s import apiclient, pods

EXIT_PARTIAL: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_API: Final = 3


async def _release(kubeconfig: str | None, policy: str | None, concurrency: int) -> dict[str, int]:
    api = await apiclient.connect(kubeconfig)
    try:
        gated = [p for p in await pods.list_gated(api) if policy is None or p.policy == policy]
        counts = {"found": len(gated), "released": 0, "gone": 0, "ungated": 0, "failed": 0}
        slots = asyncio.Semaphore(concurrency)

        async def one(rec: pods.PodRecord) -> None:
            async with slots:
                try:
                    result = await pods.release(api, rec)
                except apiclient.ApiError as exc:
                    click.echo(f"  {rec.key}: {exc}", err=True)
                    result = "failed"
            counts[result if result in counts else "failed"] += 1
            done = sum(v for k, v in counts.items() if k != "found")
            if done % 500 == 0:
                click.echo(f"  {done}/{len(gated)} ...", err=True)

        await asyncio.gather(*(one(r) for r in gated))
        return counts
    finally:
        await api.close()


@click.command("release")
@click.option("--all", "release_all", is_flag=True, help="Release every gate burstguard owns.")
@click.option("--policy", default=None, help="Only pods gated for this BurstPolicy.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Kubeconfig (default $KUBECONFIG, then in-cluster).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=32,
    show_default=True,
    help="Patches in flight.",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def command(
    *, release_all: bool, policy: str | None, kubeconfig: str | None, concurrency: int, output: str
) -> None:
    """Remove burstguard's scheduling gate from pods (needs no running operator)."""
    if not release_all:
        click.echo("error: pass --all (optionally with --policy NAME) to release gates", err=True)
        sys.exit(EXIT_USAGE)
    try:
        counts = asyncio.run(_release(kubeconfig, policy, concurrency))
    except (OSError, apiclient.ApiError, TimeoutError) as exc:
        click.echo(f"error: cannot reach the API server: {exc}", err=True)
        sys.exit(EXIT_NO_API)
    except Exception as exc:  # kubeconfig problems surface as various exception types
        click.echo(f"error: {exc}; check --kubeconfig / KUBECONFIG", err=True)
        sys.exit(EXIT_NO_API)
    if output == "json":
        click.echo(json.dumps(counts))
    else:
        scope = f" of policy {policy}" if policy else ""
        click.echo(
            f"released {counts['released']} of {counts['found']} gated pods{scope} "
            f"({counts['gone']} gone, {counts['ungated']} already ungated, "
            f"{counts['failed']} failed)"
        )
    if counts["failed"]:
        sys.exit(EXIT_PARTIAL)
