"""The webhook's serving certificate, reloaded when its files change.

cert-manager (or the chart's hook) renews ``tls.crt``/``tls.key`` in a Secret and the kubelet
swaps the mounted files; a server that read them once keeps presenting the old certificate,
the apiserver stops trusting it after the CA or leaf changes, and ``failurePolicy: Ignore``
then admits every pod ungated. So the files are polled (two small reads a second) and a new
:class:`ssl.SSLContext` is built from them when their bytes change.

Why a new context and an SNI callback instead of ``load_cert_chain`` on the live one: loading
the certificate and then a key that does not match (the files read half-way through a swap)
fails after the certificate was already replaced, and every handshake would then fail. A new
context is either complete or discarded; the listening context's ``sni_callback`` (which
OpenSSL calls on every ClientHello, with or without SNI) hands each new connection the
newest complete context. Connections already open keep theirs.

``matches_files()`` is the readiness check: the served certificate is the one on disk.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PEM_BYTES = 1 << 20
"""Largest certificate or key file read, bytes (a chain is a few KiB)."""


@dataclass(frozen=True)
class Loaded:
    """The bytes a context was built from."""

    cert: bytes
    """``tls.crt`` as read."""
    key: bytes
    """``tls.key`` as read."""


def _read(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_PEM_BYTES)


class ReloadingCertificate:
    """A server TLS context whose certificate follows ``certfile``/``keyfile``."""

    def __init__(self, certfile: str, keyfile: str, client_ca: str | None = None) -> None:
        """Load the files now (an error here is a start-up error: nothing to fall back to).

        ``client_ca``: when set, clients must present a certificate this CA signed (mTLS for
        the apiserver's calls).
        """
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self.client_ca = client_ca
        self.reloads = 0
        """Certificates loaded after the first."""
        self.last_error = ""
        """Why the newest files could not be loaded ("" after a good load)."""
        self._current, self._loaded = self._build()
        self.context = self._new_context()
        """The listening context: its SNI callback switches each handshake to the newest."""
        self.context.sni_callback = self._pick

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_ca:
            context.load_verify_locations(cafile=self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _build(self) -> tuple[ssl.SSLContext, Loaded]:
        """A complete context from the files, and the bytes it was built from.

        The files are read before and after loading; if they changed in between (a swap in
        progress) this raises, and the next poll tries again.
        """
        before = Loaded(_read(self.certfile), _read(self.keyfile))
        context = self._new_context()
        context.load_cert_chain(str(self.certfile), str(self.keyfile))
        after = Loaded(_read(self.certfile), _read(self.keyfile))
        if after != before:
            raise ssl.SSLError("certificate files changed while loading")
        return context, before

    def _pick(self, sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        sock.context = self._current

    def files(self) -> Loaded:
        """The files' bytes now."""
        return Loaded(_read(self.certfile), _read(self.keyfile))

    def poll(self) -> bool:
        """Reload if the files changed; True when a new certificate is now served."""
        try:
            now = self.files()
        except OSError as exc:
            self.last_error = f"cannot read certificate files: {exc}"
            return False
        if now == self._loaded:
            return False
        try:
            context, loaded = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            # Typically the certificate and key of two different generations mid-swap.
            self.last_error = f"cannot load the new certificate files: {exc}"
            log.warning("%s (still serving the previous certificate)", self.last_error)
            return False
        self._current, self._loaded = context, loaded
        self.reloads += 1
        self.last_error = ""
        log.info("webhook serving certificate reloaded from %s", self.certfile)
        return True

    def matches_files(self) -> tuple[bool, str]:
        """Readiness: the served certificate and key are the bytes on disk now."""
        try:
            now = self.files()
        except OSError as exc:
            return False, f"cannot read certificate files: {exc}"
        if now != self._loaded:
            return False, self.last_error or "certificate files changed; not reloaded yet"
        return True, "serving the certificate on disk"
