"""Site identity parsing, the hello check, revocation config and bearer header parsing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.security import CaLayout, Revocations, check_hello_site, init_ca, site_id_from_context
from broker.security.identity import (
    SiteCertificate,
    parse_site_certificate,
    site_certificate_from_auth_context,
)
from broker.security.interceptors import bearer_token
from computenet.errors import PermissionDeniedError, UnauthenticatedError


def make_cert(
    ca_dir: Path,
    sans: Sequence[x509.GeneralName],
    usages: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
) -> bytes:
    layout = CaLayout(ca_dir)
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def uri(text: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(text)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("identity-ca")
    init_ca(path)
    return path


@pytest.mark.parametrize(
    ("sans", "usages", "expected"),
    [
        ([uri("spiffe://computenet/site/a")], (ExtendedKeyUsageOID.CLIENT_AUTH,), "a"),
        ([uri("spiffe://computenet/site/a")], None, "a"),
        ([], (ExtendedKeyUsageOID.CLIENT_AUTH,), None),
        ([x509.DNSName("a")], (ExtendedKeyUsageOID.CLIENT_AUTH,), None),
        ([uri("spiffe://computenet/site/a"), uri("spiffe://computenet/site/b")], None, None),
        ([uri("spiffe://other/site/a")], None, None),
        ([uri("spiffe://computenet/site/a/b")], None, None),
        ([uri("spiffe://computenet/site/")], None, None),
        ([uri("spiffe://computenet/site/a")], (ExtendedKeyUsageOID.SERVER_AUTH,), None),
    ],
)
def test_exactly_one_site_uri_names_the_site(
    ca_dir: Path,
    sans: list[x509.GeneralName],
    usages: Sequence[x509.ObjectIdentifier] | None,
    expected: str | None,
) -> None:
    identity = parse_site_certificate(make_cert(ca_dir, sans, usages))
    assert (identity.site_id if identity else None) == expected


def test_garbage_is_no_identity() -> None:
    assert parse_site_certificate(b"not a certificate") is None
    assert site_certificate_from_auth_context({}) is None
    assert site_certificate_from_auth_context({"x509_pem_cert": [b"a", b"b"]}) is None


class FakeContext:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def test_check_hello_site(ca_dir: Path) -> None:
    pem = make_cert(ca_dir, [uri("spiffe://computenet/site/a")])
    context: Any = FakeContext({"x509_pem_cert": [pem]})
    assert site_id_from_context(context) == "a"
    assert check_hello_site("a", context) == "a"
    assert check_hello_site("", context) == "a"
    with pytest.raises(PermissionDeniedError):
        check_hello_site("b", context)
    anonymous: Any = FakeContext({})
    with pytest.raises(UnauthenticatedError):
        check_hello_site("a", anonymous)
    assert check_hello_site("a", anonymous, require_certificate=False) == "a"


def test_revocations_from_config(tmp_path: Path) -> None:
    revoked = Revocations.from_config({"serials": ["0A:1b", 99, "0x10"], "sites": ["x"]})
    assert revoked.serials == {0x0A1B, 99, 0x10}
    assert revoked.is_revoked(SiteCertificate("a", 0x0A1B))
    assert revoked.is_revoked(SiteCertificate("x", 1))
    assert not revoked.is_revoked(SiteCertificate("a", 1))
    assert Revocations.from_config(None) == Revocations()
    with pytest.raises(ValueError):
        Revocations.from_config({"serial": [1]})
    path = tmp_path / "revoked.yaml"
    path.write_text("serials: ['ff']\nsites: [gone]\n")
    assert Revocations.load(path) == Revocations(frozenset({255}), frozenset({"gone"}))


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), None),
        ((("x-request-id", "r"),), None),
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer  abc "),), "abc"),
        ((("authorization", "Basic abc"),), ""),
        ((("authorization", "Bearer"),), ""),
        ((("authorization", b"Bearer abc"),), None),
    ],
)
def test_bearer_token(metadata: tuple[tuple[str, Any], ...], expected: str | None) -> None:
    assert bearer_token(metadata) == expected
