"""Serving certificates for the webhook: a small CA and a server certificate, made locally.

kopf can generate self-signed certificates, but only through ``oscrypto``, which fails on
OpenSSL >= 3.0.10; ``cryptography`` is already a dependency and works. In a cluster the
Helm chart (cert-manager or a pre-install hook) provides the files; for a control plane on
the host the operator makes them here: ``ca.pem`` (for the webhook configuration's
caBundle), ``tls.crt`` and ``tls.key``, valid for the given host names and IP addresses.
Existing files are reused, so a restarted operator keeps the CA the apiserver trusts.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


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


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ensure(directory: Path, hosts: Sequence[str], *, days: int = 365) -> Paths:
    """Make (or reuse) a CA and a serving certificate for ``hosts`` in ``directory``."""
    p = paths(directory)
    if p.ca.exists() and p.cert.exists() and p.key.exists():
        return p
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("burstguard-webhook-ca"))
        .issuer_name(_name("burstguard-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "burstguard-webhook"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    p.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    p.key.chmod(0o600)
    p.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    p.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return p
