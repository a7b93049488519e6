"""The ``--metrics-auth`` and ``--metrics-cert-file``/``--metrics-key-file`` options, shared by
``burstguard operator`` and ``burstguard agent``.

Both are off by default: the chart's NetworkPolicy already limits who reaches the metrics
ports. ``--metrics-auth`` asks the apiserver about every new bearer token (TokenReview, then a
SubjectAccessReview for ``get`` on ``/metrics``) and caches verdicts for a minute; the
certificate options serve ``/metrics`` over TLS and reload the files when they change. The
probes on the same port stay open for the kubelet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from burstguard.exporter import serving
from burstguard.k8s import metricsreviews, nodes, nodetypes
from burstguard.operator import tlsreloading


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the three options to a click command."""
    for option in reversed(
        [
            click.option(
                "--metrics-auth/--no-metrics-auth",
                default=False,
                show_default=True,
                help="Serve /metrics only to bearer tokens allowed to get the non-resource "
                "URL /metrics (TokenReview + SubjectAccessReview; the probes stay open).",
            ),
            click.option(
                "--metrics-cert-file",
                type=click.Path(dir_okay=False, exists=True),
                default=None,
                help="Serve /metrics over TLS with this certificate (PEM; reloaded on change).",
            ),
            click.option(
                "--metrics-key-file",
                type=click.Path(dir_okay=False, exists=True),
                default=None,
                help="Key of --metrics-cert-file (PEM).",
            ),
        ]
    ):
        command = option(command)
    return command


def build(
    auth: bool, cert_file: str | None, key_file: str | None, kubeconfig: str | None
) -> tuple[serving.Authorize | None, serving.Tls | None]:
    """The authorizer and TLS source the options ask for (None, None by default)."""
    if bool(cert_file) != bool(key_file):
        raise click.UsageError("--metrics-cert-file and --metrics-key-file go together")
    tls = tlsreloading.ReloadingCertificate(cert_file, key_file) if cert_file and key_file else None
    authorize = None
    if auth:
        try:
            authorize = metricsreviews.Reviewer(nodes.connect(kubeconfig))
        except nodetypes.NodeApiError as exc:
            raise click.UsageError(f"--metrics-auth: {exc}") from exc
    return authorize, tls
