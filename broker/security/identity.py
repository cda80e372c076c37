"""Site identity from the TLS-verified client certificate, revocation, and server credentials."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from broker.security.certs import SITE_URI_PREFIX, site_uri
from broker.security.principal import current_site
from computenet.errors import PermissionDeniedError, UnauthenticatedError

log = logging.getLogger(__name__)

PEM_CERT_KEY = "x509_pem_cert"


@dataclass(frozen=True, slots=True)
class SiteCertificate:
    """What the broker trusts about a caller: read from the certificate the handshake verified."""

    site_id: str
    """The site id from the single `spiffe://computenet/site/<id>` URI SAN."""
    serial: int
    """The certificate's serial number, for revocation."""


@functools.lru_cache(maxsize=4096)
def parse_site_certificate(pem: bytes) -> SiteCertificate | None:
    """The site identity of a PEM client certificate, or None if it names no single site.

    Exactly one URI SAN is required, and it must be a site URI; a certificate with an extended
    key usage must allow client authentication.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1 or not uris[0].startswith(SITE_URI_PREFIX):
        return None
    site_id = uris[0].removeprefix(SITE_URI_PREFIX)
    try:
        if site_uri(site_id) != uris[0]:
            return None
    except ValueError:
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return None
    return SiteCertificate(site_id=site_id, serial=cert.serial_number)


def site_certificate_from_auth_context(
    auth_context: Mapping[str, Iterable[bytes]],
) -> SiteCertificate | None:
    """The site identity of a verified peer; None without TLS client authentication."""
    pems = list(auth_context.get(PEM_CERT_KEY, ()))
    if len(pems) != 1:
        return None
    return parse_site_certificate(bytes(pems[0]))


def site_certificate_from_context(context: grpc.aio.ServicerContext) -> SiteCertificate | None:
    """The site identity proven by the caller of this RPC, or None."""
    return site_certificate_from_auth_context(context.auth_context())


def site_id_from_context(context: grpc.aio.ServicerContext) -> str | None:
    """The site id proven by the caller's certificate, or None."""
    identity = site_certificate_from_context(context)
    return identity.site_id if identity else None


def check_hello_site(
    claimed: str, context: grpc.aio.ServicerContext, *, require_certificate: bool = True
) -> str:
    """The site id an agent may act as, checked against the `site_id` its hello claims.

    Raises PermissionDeniedError if the certificate names another site, UnauthenticatedError if
    there is no certificate and one is required (insecure loopback mode passes False).
    """
    proven = current_site() or site_id_from_context(context)
    if proven is None:
        if require_certificate:
            raise UnauthenticatedError("a site certificate is required")
        return claimed
    if claimed and claimed != proven:
        log.warning("site spoofing refused certificate_site=%s claimed_site=%s", proven, claimed)
        raise PermissionDeniedError(f"this certificate belongs to site {proven!r}")
    return proven


def _serial(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return int(value.replace(":", "").strip().removeprefix("0x"), 16)
    raise ValueError(f"revoked serial {value!r} is neither an int nor a hex string")


@dataclass(frozen=True, slots=True)
class Revocations:
    """Certificates the broker refuses although they verify: by serial or by whole site."""

    serials: frozenset[int] = field(default_factory=frozenset)
    """Revoked certificate serial numbers."""
    site_ids: frozenset[str] = field(default_factory=frozenset)
    """Sites whose every certificate is refused."""

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> Revocations:
        """From `{serials: [hex string or int, ...], sites: [site id, ...]}`; raises ValueError."""
        data = data or {}
        unknown = set(data) - {"serials", "sites"}
        if unknown:
            raise ValueError(f"unknown revocation keys: {sorted(unknown)}")
        return cls(
            serials=frozenset(_serial(v) for v in data.get("serials") or ()),
            site_ids=frozenset(str(v) for v in data.get("sites") or ()),
        )

    @classmethod
    def load(cls, path: Path) -> Revocations:
        """From a YAML file of the `from_config` shape."""
        return cls.from_config(yaml.safe_load(Path(path).read_text()) or {})

    def is_revoked(self, identity: SiteCertificate) -> bool:
        """True if this certificate, or its whole site, is revoked."""
        return identity.serial in self.serials or identity.site_id in self.site_ids


def _pem(value: Path | bytes) -> bytes:
    return value if isinstance(value, bytes) else Path(value).read_bytes()


def server_credentials(
    ca: Path | bytes, cert: Path | bytes, key: Path | bytes, *, require_client_auth: bool
) -> grpc.ServerCredentials:
    """TLS server credentials from PEM files or bytes.

    With `require_client_auth` (the agents' port) the handshake refuses peers without a
    certificate from `ca`, or with an expired one, before any handler runs. Without it (the
    clients' port) no client certificate is requested and clients prove themselves with tokens.
    """
    return grpc.ssl_server_credentials(
        [(_pem(key), _pem(cert))],
        root_certificates=_pem(ca),
        require_client_auth=require_client_auth,
    )
