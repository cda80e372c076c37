"""Issues the federation's X.509 material: a private CA, the broker's server certificate and
site client certificates whose identity is the URI SAN `spiffe://computenet/site/<id>`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SITE_URI_PREFIX = "spiffe://computenet/site/"
DEFAULT_DAYS = 365
DEFAULT_CA_DAYS = 3650
_SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
_BACKDATE = dt.timedelta(minutes=5)


class CaExistsError(FileExistsError):
    """A CA already exists in the directory and overwriting it was not asked for."""


class CaMissingError(FileNotFoundError):
    """The directory holds no CA to issue from; run `certs init` first."""


@dataclass(frozen=True, slots=True)
class CaLayout:
    """Where the files of one certificate directory live."""

    dir: Path
    """The certificate directory."""

    @property
    def ca_cert(self) -> Path:
        """The CA certificate, given to every broker, agent and client."""
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA private key (0600); keep it offline in production."""
        return self.dir / "ca-key.pem"

    @property
    def broker_cert(self) -> Path:
        """The broker's server certificate."""
        return self.dir / "broker.pem"

    @property
    def broker_key(self) -> Path:
        """The broker's private key (0600)."""
        return self.dir / "broker-key.pem"

    def site_cert(self, site_id: str) -> Path:
        """The client certificate of a site."""
        return self.dir / "sites" / f"{site_id}.pem"

    def site_key(self, site_id: str) -> Path:
        """The private key of a site (0600)."""
        return self.dir / "sites" / f"{site_id}-key.pem"


def site_uri(site_id: str) -> str:
    """The URI SAN naming a site; raises ValueError for an id unfit for a URI or file name."""
    if not _SITE_ID.match(site_id):
        raise ValueError(f"invalid site id {site_id!r}: use 1-63 of [A-Za-z0-9._-]")
    return SITE_URI_PREFIX + site_id


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write through a temporary file so a reader never sees half a key; keys get 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _builder(
    subject: str,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    end: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca(layout: CaLayout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not (layout.ca_cert.exists() and layout.ca_key.exists()):
        raise CaMissingError(f"no CA in {layout.dir}; run `computenet-broker certs init` first")
    cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{layout.ca_key} is not an EC private key")
    return cert, key


def _issue_leaf(
    layout: CaLayout,
    subject: str,
    sans: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    start: dt.datetime,
    end: dt.datetime,
) -> tuple[x509.Certificate, bytes]:
    ca_cert, ca_key = _load_ca(layout)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(subject, ca_cert.subject, key, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_leaf_usage(), True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, _key_pem(key)


def init_ca(
    directory: Path, *, days: int = DEFAULT_DAYS, hosts: Sequence[str] = (), force: bool = False
) -> list[Path]:
    """Create a CA (EC P-256) and the broker's server certificate; returns the files written.

    The broker certificate names localhost, 127.0.0.1 and ::1 plus `hosts` (DNS names or IPs).
    Raises CaExistsError if the directory already holds a CA and `force` is False.
    """
    layout = CaLayout(Path(directory))
    if not force and (layout.ca_cert.exists() or layout.ca_key.exists()):
        raise CaExistsError(f"a CA already exists in {layout.dir}; pass --force to replace it")
    start = _now() - _BACKDATE
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ComputeNet CA")])
    ca_cert = (
        _builder("ComputeNet CA", name, ca_key, start, start + dt.timedelta(days=DEFAULT_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
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
            True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(layout.ca_key, _key_pem(ca_key), private=True)
    _write(layout.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    names = list(dict.fromkeys((*_DEFAULT_HOSTS, *hosts)))
    cert, key_pem = _issue_leaf(
        layout,
        "computenet-broker",
        [_san(h) for h in names],
        ExtendedKeyUsageOID.SERVER_AUTH,
        start,
        start + dt.timedelta(days=days),
    )
    _write(layout.broker_key, key_pem, private=True)
    _write(layout.broker_cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return [layout.ca_cert, layout.ca_key, layout.broker_cert, layout.broker_key]


def issue_site(
    directory: Path,
    site_id: str,
    *,
    days: int = DEFAULT_DAYS,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    client_auth: bool = True,
) -> tuple[Path, Path]:
    """Issue a client certificate for `site_id` from the directory's CA; returns (cert, key).

    `not_before`/`not_after` override the validity window (e.g. an expired certificate for
    tests); `client_auth=False` issues one with the serverAuth usage instead, also for tests.
    """
    layout = CaLayout(Path(directory))
    uri = site_uri(site_id)
    start = not_before or (_now() - _BACKDATE)
    end = not_after or (start + dt.timedelta(days=days))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.SERVER_AUTH
    cert, key_pem = _issue_leaf(
        layout, site_id, [x509.UniformResourceIdentifier(uri)], usage, start, end
    )
    _write(layout.site_key(site_id), key_pem, private=True)
    _write(layout.site_cert(site_id), cert.public_bytes(serialization.Encoding.PEM), private=False)
    return layout.site_cert(site_id), layout.site_key(site_id)


def serial_hex(cert_pem: bytes) -> str:
    """The serial number of a PEM certificate in hex, as revocation lists name it."""
    return format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")
