"""Certificates and keys of a local control plane, made with ``cryptography``.

One CA signs everything: the apiserver's serving certificate (SAN 127.0.0.1 and localhost, so
Python clients verify it rather than skip verification), the serving certificate of
kube-controller-manager and kube-scheduler (so their health checks verify too), client
certificates (the admin is in ``system:masters``), and serving certificates for webhooks that
tests run on 127.0.0.1 (their ``caBundle`` is this CA). The service-account signing key is a
separate key pair, as in a real cluster.

Keys are ECDSA P-256: generating one takes well under a millisecond where RSA-2048 takes tens,
and every component accepts them (ES256 for service-account tokens). Functions here compute
PEM bytes; ``write_*`` helpers put them in files with mode 0600 for private keys.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY: Final = datetime.timedelta(days=365)
"""Lifetime of every certificate (the dev cluster is not meant to live longer)."""

BACKDATE: Final = datetime.timedelta(hours=1)
"""``notBefore`` is this far in the past, so small clock differences never matter."""

LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost")
"""Default SANs of serving certificates: everything runs on the loopback interface."""


@dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate (or public key), both PEM."""

    key_pem: bytes
    """PKCS#8 private key, PEM."""
    cert_pem: bytes
    """X.509 certificate (or SubjectPublicKeyInfo for the service-account key), PEM."""


@dataclass(frozen=True)
class Files:
    """A certificate or public key and its private key on disk."""

    cert: Path
    """Certificate (or public key) file, PEM."""
    key: Path
    """Private key file, PEM, mode 0600."""


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)


def new_ca(common_name: str = "burstguard-devcluster-ca") -> KeyPair:
    """A self-signed CA allowed to sign certificates (no path length)."""
    key = _new_key()
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    hosts: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
) -> KeyPair:
    """A leaf certificate signed by ``ca``.

    ``hosts`` become SANs (IP addresses as IP SANs, the rest as DNS names); ``server`` and
    ``client`` set the extended key usages. Kubernetes reads the user name from the CN and
    the groups from the O attributes of a client certificate.
    """
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key must be an ECDSA key made by new_ca()")
    key = _new_key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False
        )
    cert = _validity(builder).sign(ca_key, hashes.SHA256())
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def new_signing_key() -> KeyPair:
    """The service-account token signing key; ``cert_pem`` holds its public key."""
    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(_key_pem(key), public)


def ca_bundle(ca_cert_pem: bytes) -> str:
    """The CA as a webhook ``clientConfig.caBundle`` value (base64 of the PEM)."""
    return base64.b64encode(ca_cert_pem).decode("ascii")


def write(pair: KeyPair, directory: Path, stem: str, *, cert_suffix: str = ".crt") -> Files:
    """Write ``<stem><cert_suffix>`` and ``<stem>.key`` (0600) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{stem}{cert_suffix}"
    key = directory / f"{stem}.key"
    cert.write_bytes(pair.cert_pem)
    key.touch(mode=0o600)
    key.chmod(0o600)
    key.write_bytes(pair.key_pem)
    return Files(cert=cert, key=key)


def read(files: Files) -> KeyPair:
    """Load a pair written by ``write``."""
    return KeyPair(key_pem=files.key.read_bytes(), cert_pem=files.cert.read_bytes())
