"""Serving certificates for the webhook: a small CA and a server certificate, made locally.

kopf can generate self-signed certificates, but only through ``oscrypto``, which fails on
OpenSSL >= 3.0.10; ``cryptography`` is already a dependency and works. In a cluster the
Helm chart (cert-manager or a pre-install hook) provides the files; for a control plane on
the host the operator makes them here: ``ca.pem`` (for the webhook configuration's
caBundle), ``tls.crt`` and ``tls.key``, valid for the given host names and IP addresses.
Existing files are reused, so a restarted operator keeps the CA the apiserver trusts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from burstguard.devcluster import pki


@dataclass(frozen=True)
class Paths:
    """Where the webhook's TLS files are."""

    ca: Path
    """CA certificate (PEM)."""
    cert: Path
    """Serving certificate (PEM)."""
    key: Path
    """Serving key (PEM)."""


def paths(directory: Path) -> Paths:
    """The file names inside a certificate directory."""
    return Paths(directory / "ca.pem", directory / "tls.crt", directory / "tls.key")


def ensure(directory: Path, hosts: Sequence[str]) -> Paths:
    """Make (or reuse) a CA and a serving certificate for ``hosts`` in ``directory``.

    The certificates come from the same code as the local control plane's (``pki``: ECDSA
    P-256, one year); only the CA certificate is kept, its key is not needed again.
    """
    p = paths(directory)
    if p.ca.exists() and p.cert.exists() and p.key.exists():
        return p
    ca = pki.new_ca("burstguard-webhook-ca")
    serving = pki.issue(ca, hosts[0] if hosts else "burstguard-webhook", hosts=hosts, server=True)
    pki.write(serving, directory, "tls")
    p.ca.write_bytes(ca.cert_pem)
    return p
