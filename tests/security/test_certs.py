"""Certificates: what `init_ca` and `issue_site` write, and the `certs` commands."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from broker.commands.certs import certs_app
from broker.security import CaExistsError, CaLayout, CaMissingError, init_ca, issue_site
from broker.security.identity import parse_site_certificate


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_ca_writes_a_p256_ca_and_a_broker_certificate(tmp_path: Path) -> None:
    written = init_ca(tmp_path, days=10, hosts=["broker.example.cn", "10.0.0.7"])
    layout = CaLayout(tmp_path)
    assert written == [layout.ca_cert, layout.ca_key, layout.broker_cert, layout.broker_key]
    ca, broker = load(layout.ca_cert), load(layout.broker_cert)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert broker.issuer == ca.subject
    sans = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "broker.example.cn"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.0.0.7")
    }
    usages = broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = broker.not_valid_after_utc - broker.not_valid_before_utc
    assert dt.timedelta(days=10) <= lifetime < dt.timedelta(days=10, minutes=10)
    assert mode(layout.ca_key) == 0o600
    assert mode(layout.broker_key) == 0o600


def test_init_ca_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    init_ca(tmp_path)
    before = CaLayout(tmp_path).ca_cert.read_bytes()
    with pytest.raises(CaExistsError):
        init_ca(tmp_path)
    assert CaLayout(tmp_path).ca_cert.read_bytes() == before
    init_ca(tmp_path, force=True)
    assert CaLayout(tmp_path).ca_cert.read_bytes() != before


def test_site_certificate_names_the_site(tmp_path: Path) -> None:
    init_ca(tmp_path)
    cert_path, key_path = issue_site(tmp_path, "gansu-qingyang", days=5)
    assert cert_path == tmp_path / "sites" / "gansu-qingyang.pem"
    assert key_path == tmp_path / "sites" / "gansu-qingyang-key.pem"
    assert mode(key_path) == 0o600
    cert = load(cert_path)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "gansu-qingyang"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://computenet/site/gansu-qingyang"]
    identity = parse_site_certificate(cert_path.read_bytes())
    assert identity is not None
    assert (identity.site_id, identity.serial) == ("gansu-qingyang", cert.serial_number)


def test_validity_override_issues_an_expired_certificate(tmp_path: Path) -> None:
    init_ca(tmp_path)
    end = dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    cert_path, _ = issue_site(
        tmp_path, "old", not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), not_after=end
    )
    assert load(cert_path).not_valid_after_utc == end


def test_issue_site_needs_a_ca_and_a_sane_id(tmp_path: Path) -> None:
    with pytest.raises(CaMissingError):
        issue_site(tmp_path, "a")
    init_ca(tmp_path)
    for bad in ("../etc", "a/b", "", "-x", "a" * 64):
        with pytest.raises(ValueError):
            issue_site(tmp_path, bad)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    app.add_typer(certs_app, name="certs")
    return app


def test_certs_commands(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    directory = tmp_path / "pki"
    result = runner.invoke(cli, ["certs", "init", "--dir", str(directory), "--host", "b.cn"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [
        str(directory / name) for name in ("ca.pem", "ca-key.pem", "broker.pem", "broker-key.pem")
    ]
    again = runner.invoke(cli, ["certs", "init", "--dir", str(directory)])
    assert again.exit_code == 1
    assert "--force" in again.stderr
    forced = runner.invoke(cli, ["certs", "init", "--dir", str(directory), "--force"])
    assert forced.exit_code == 0
    issued = runner.invoke(
        cli, ["certs", "issue-site", "nm-ulanqab", "--dir", str(directory), "--days", "30"]
    )
    assert issued.exit_code == 0, issued.output
    assert issued.stdout.split() == [
        str(directory / "sites" / "nm-ulanqab.pem"),
        str(directory / "sites" / "nm-ulanqab-key.pem"),
    ]
    assert "serial:" in issued.stderr
    bad = runner.invoke(cli, ["certs", "issue-site", "../x", "--dir", str(directory)])
    assert bad.exit_code == 2
    missing = runner.invoke(cli, ["certs", "issue-site", "a", "--dir", str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert "certs init" in missing.stderr
