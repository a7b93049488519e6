"""``burstguard operator``: run the operator (webhook, pacer, intake steering, shadow mode).

In a cluster the Helm chart runs it with the in-cluster service account and its own webhook
configuration; on a host next to a local control plane (development, tests) point it at a
kubeconfig (``--kubeconfig`` or ``$KUBECONFIG``) and let it register its webhook by URL
(``--register-webhook``) and install the CRD (``--install-crd``).

Exit codes: 0 stopped by a signal; 1 the operator failed; 3 no usable kubeconfig or API.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

import click

from burstguard.cli import metricsprotection
from burstguard.core import leadership
from burstguard.operator import main as operator_main
from burstguard.operator import runtime

EXIT_FAILED: Final = 1
EXIT_NO_API: Final = 3


@click.command("operator")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Kubeconfig (default $KUBECONFIG, then in-cluster).",
)
@click.option(
    "--webhook-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the webhook listens on (and its URL host with --register-webhook).",
)
@click.option("--webhook-port", type=int, default=9443, show_default=True, help="Webhook TLS port.")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/tmp/burstguard-webhook"),
    show_default=True,
    help="Holds ca.pem, tls.crt, tls.key; made when missing.",
)
@click.option(
    "--webhook-client-ca",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Require the apiserver's client certificate, signed by this CA (PEM), for admissions.",
)
@click.option(
    "--register-webhook/--no-register-webhook",
    default=False,
    show_default=True,
    help="Create the MutatingWebhookConfiguration pointing at this process.",
)
@click.option(
    "--webhook-timeout",
    type=click.IntRange(1, 30),
    default=2,
    show_default=True,
    help="Admission timeout in the registered configuration, seconds.",
)
@click.option(
    "--exclude-namespace",
    "excluded",
    multiple=True,
    default=("kube-system",),
    show_default=True,
    help="Namespace never gated (repeatable; add the release namespace).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Only pace pods in this namespace (repeatable; default all).",
)
@click.option(
    "--metrics-port", type=int, default=8080, show_default=True, help="Prometheus port; 0 disables."
)
@click.option(
    "--tick",
    type=click.FloatRange(0.01, 10),
    default=0.1,
    show_default=True,
    help="Pacer tick, seconds.",
)
@click.option(
    "--status-interval",
    type=click.FloatRange(0.1, 600),
    default=2.0,
    show_default=True,
    help="Least time between status writes, seconds.",
)
@click.option(
    "--release-concurrency",
    type=click.IntRange(1, 512),
    default=32,
    show_default=True,
    help="Release patches in flight at once.",
)
@click.option(
    "--routine-release-events/--no-routine-release-events",
    default=False,
    show_default=True,
    help="An Event for every paced release (one more API write per pod).",
)
@click.option(
    "--leader-elect/--standalone",
    default=True,
    show_default=True,
    help="Elect one writer among replicas by a Lease; --standalone: this one process writes.",
)
@click.option(
    "--lease-namespace",
    default=lambda: os.environ.get("POD_NAMESPACE", "default"),
    show_default="$POD_NAMESPACE or default",
    help="Namespace of the leader Lease.",
)
@click.option(
    "--lease-name", default="burstguard-operator", show_default=True, help="Leader Lease name."
)
@click.option(
    "--identity",
    default=lambda: os.environ.get("POD_NAME", ""),
    show_default="$POD_NAME or host-pid",
    help="This replica's Lease holder identity.",
)
@click.option(
    "--lease-duration",
    type=click.FloatRange(min=1, min_open=False),
    default=15.0,
    show_default=True,
    help="Seconds a standby waits after the Lease last changed before taking it.",
)
@click.option(
    "--renew-deadline",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="Seconds the leader keeps writing without a successful renewal.",
)
@click.option(
    "--retry-period",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between two attempts to take or renew the Lease.",
)
@click.option(
    "--webhook-keepalive/--no-webhook-keepalive",
    default=False,
    show_default=True,
    help="Keep apiserver connections open between reviews (a killed replica then fails "
    "open the reviews sent down its idle connections).",
)
@click.option(
    "--webhook-shared-port/--no-webhook-shared-port",
    default=False,
    show_default=True,
    help="Share the webhook port with other replicas on this host (SO_REUSEPORT; dev/tests).",
)
@click.option(
    "--install-crd/--no-install-crd",
    default=False,
    show_default=True,
    help="Install the BurstPolicy CRD before starting.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    help="Structured JSON lines or plain text.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@metricsprotection.options
def command(
    *,
    kubeconfig: str | None,
    webhook_host: str,
    webhook_port: int,
    cert_dir: Path,
    webhook_client_ca: str | None,
    register_webhook: bool,
    webhook_timeout: int,
    excluded: tuple[str, ...],
    namespaces: tuple[str, ...],
    metrics_port: int,
    tick: float,
    status_interval: float,
    release_concurrency: int,
    routine_release_events: bool,
    leader_elect: bool,
    lease_namespace: str,
    lease_name: str,
    identity: str,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
    webhook_keepalive: bool,
    webhook_shared_port: bool,
    install_crd: bool,
    log_format: str,
    verbose: bool,
    metrics_auth: bool,
    metrics_cert_file: str | None,
    metrics_key_file: str | None,
) -> None:
    """Run the operator: gating webhook, pacer, intake steering, DryRun shadow."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path and not Path(path).exists():
        click.echo(
            f"error: kubeconfig {path} does not exist; pass --kubeconfig or set KUBECONFIG",
            err=True,
        )
        sys.exit(EXIT_NO_API)
    if (
        not path
        and not os.environ.get("KUBERNETES_SERVICE_HOST")
        and not (Path.home() / ".kube" / "config").exists()
    ):
        click.echo(
            "error: no kubeconfig and not in a cluster; pass --kubeconfig or set KUBECONFIG",
            err=True,
        )
        sys.exit(EXIT_NO_API)
    if path:
        # kopf.login_with_kubeconfig (operator.handlers.login) reads $KUBECONFIG.
        os.environ["KUBECONFIG"] = path
    try:
        timing = leadership.Timing(
            lease_duration_s=lease_duration,
            renew_deadline_s=renew_deadline,
            retry_period_s=retry_period,
        )
    except leadership.TimingError as exc:
        raise click.BadParameter(str(exc), param_hint="--lease-duration/--renew-deadline") from exc
    authorize, tls = metricsprotection.build(
        metrics_auth, metrics_cert_file, metrics_key_file, path
    )
    options = runtime.Options(
        kubeconfig=path,
        webhook_host=webhook_host,
        webhook_port=webhook_port,
        cert_dir=cert_dir,
        webhook_client_ca=webhook_client_ca,
        register_webhook=register_webhook,
        webhook_timeout_s=webhook_timeout,
        excluded_namespaces=tuple(excluded),
        namespaces=tuple(namespaces),
        metrics_port=metrics_port or None,
        metrics_authorize=authorize,
        metrics_tls=tls,
        tick_s=tick,
        status_interval_s=status_interval,
        release_concurrency=release_concurrency,
        routine_release_events=routine_release_events,
        leader_elect=leader_elect,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        identity=identity,
        lease_timing=timing,
        webhook_keepalive=webhook_keepalive,
        webhook_shared_port=webhook_shared_port,
    )
    try:
        operator_main.run(
            options,
            log_json=log_format == "json",
            verbose=verbose,
            install_crd=install_crd,
        )
    except KeyboardInterrupt:
        return
    except (OSError, TimeoutError) as exc:
        click.echo(f"error: cannot reach the API server: {exc}", err=True)
        sys.exit(EXIT_NO_API)
    except Exception as exc:
        click.echo(f"error: operator failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
