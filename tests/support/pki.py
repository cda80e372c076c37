"""A throwaway PKI for tests: a CA, the broker certificate, site certificates and tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from broker.security.certs import CaLayout, init_ca, issue_site
from broker.security.principal import Role
from broker.security.tokens import add_token
from computenet import Client
from computenet.tls import site_channel_credentials, tls_channel_credentials

PRINCIPALS = {
    "operator": ("ops", Role.OPERATOR),
    "alice": ("tenant-a", Role.USER),
    "bob": ("tenant-b", Role.USER),
}


@dataclass
class Pki:
    """Certificates and tokens for one test session; sites are issued on first use."""

    root: Path
    tokens_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def ca(self) -> Path:
        """The CA certificate clients and agents trust."""
        return CaLayout(self.root).ca_cert

    def broker_args(self) -> list[str]:
        """`computenet-broker serve` options turning TLS and tokens on."""
        return ["--tls-dir", str(self.root), "--tokens", str(self.tokens_path)]

    def site_tls(self, site_id: str) -> dict[str, str]:
        """The `tls` section of an agent config for `site_id`."""
        layout = CaLayout(self.root)
        if not layout.site_cert(site_id).exists():
            issue_site(self.root, site_id)
        return {
            "ca": str(layout.ca_cert),
            "cert": str(layout.site_cert(site_id)),
            "key": str(layout.site_key(site_id)),
        }

    def site_credentials(self, site_id: str) -> grpc.ChannelCredentials:
        """mTLS credentials of a site agent."""
        tls = self.site_tls(site_id)
        return site_channel_credentials(tls["ca"], tls["cert"], tls["key"])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials of a client (the token goes in call metadata)."""
        return tls_channel_credentials(self.ca)

    def client(self, address: str, who: str = "operator", **kwargs: object) -> Client:
        """An SDK client over TLS carrying `who`'s token."""
        return Client(
            address=address,
            credentials=self.channel_credentials(),
            token=self.tokens[who],
            **kwargs,  # type: ignore[arg-type]
        )


def make_pki(root: Path) -> Pki:
    """Create the CA, the broker certificate and one token per test principal."""
    init_ca(root)
    pki = Pki(root=root, tokens_path=root / "tokens.yaml")
    for name, (tenant, role) in PRINCIPALS.items():
        pki.tokens[name] = add_token(pki.tokens_path, name, tenant=tenant, role=role)
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's PKI."""
    return make_pki(tmp_path_factory.mktemp("pki"))
