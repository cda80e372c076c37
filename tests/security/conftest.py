"""Fixtures of the security tests: a PKI on disk and a real TLS gRPC server on 127.0.0.1:0."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from broker.rpc.errors import ErrorTranslationInterceptor
from broker.security import (
    AuthSettings,
    CaLayout,
    LimitSettings,
    Principal,
    Revocations,
    Role,
    TokenStore,
    init_ca,
    issue_site,
    server_credentials,
)
from broker.security.certs import serial_hex
from broker.security.revocation import RevocationChecker
from broker.security.stack import SecurityStack
from broker.security.tokens import TokenAuthenticator, TokenEntry, hash_token
from computenet import tls
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2_grpc as reb_grpc
from computenet.v1 import site_service_pb2_grpc as site_grpc
from tests.security import servicers

ALICE = "cnt_alice-token-for-tests-0000000000000000000000"
BOB = "cnt_bob-token-for-tests-00000000000000000000000000"
ROOT = "cnt_root-operator-token-for-tests-0000000000000000"


@dataclass(frozen=True)
class Pki:
    """The test federation's certificates, plus a foreign CA's."""

    layout: CaLayout
    foreign: CaLayout

    def site(self, site_id: str, *, foreign: bool = False) -> tuple[bytes, bytes]:
        """(cert, key) PEM of a site issued before."""
        layout = self.foreign if foreign else self.layout
        return layout.site_cert(site_id).read_bytes(), layout.site_key(site_id).read_bytes()

    def revocations(self) -> Revocations:
        """Site `revoked` by serial, site `gone` as a whole."""
        serial = serial_hex(self.layout.site_cert("revoked").read_bytes())
        return Revocations.from_config({"serials": [serial], "sites": ["gone"]})


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root / "ca", days=30)
    init_ca(root / "foreign", days=30)
    for site in ("site-a", "site-b", "revoked", "gone"):
        issue_site(root / "ca", site, days=30)
    issue_site(root / "foreign", "site-a", days=30)
    now = dt.datetime.now(dt.UTC)
    issue_site(
        root / "ca", "expired", not_before=now - dt.timedelta(days=10),
        not_after=now - dt.timedelta(days=1),
    )  # fmt: skip
    issue_site(
        root / "ca", "future", not_before=now + dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=10),
    )  # fmt: skip
    issue_site(root / "ca", "server-usage", client_auth=False)
    return Pki(CaLayout(root / "ca"), CaLayout(root / "foreign"))


def token_store() -> TokenStore:
    """alice and bob are users of tenants acme and globex; root is an operator."""
    return TokenStore(
        TokenEntry(Principal(tenant, Role(role), name), hash_token(token))
        for token, tenant, role, name in (
            (ALICE, "acme", "user", "alice"),
            (BOB, "globex", "user", "bob"),
            (ROOT, "ops", "operator", "root"),
        )
    )


@dataclass
class Harness:
    """A running server: the agents' mTLS port, the clients' TLS port, and what ran."""

    pki: Pki
    site_target: str
    client_target: str
    stack: SecurityStack
    calls: servicers.Calls
    site_service: servicers.SiteService
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def agent_channel(self, site_id: str | None, *, foreign: bool = False) -> grpc.aio.Channel:
        """A channel to the agents' port presenting `site_id`'s certificate (None: none)."""
        ca = self.pki.layout.ca_cert.read_bytes()
        if site_id is None:
            creds = tls.tls_channel_credentials(ca)
        else:
            cert, key = self.pki.site(site_id, foreign=foreign)
            creds = tls.site_channel_credentials(ca, cert, key)
        return self._open(self.site_target, creds)

    def client_channel(self, token: str | None = None) -> grpc.aio.Channel:
        """A TLS channel to the clients' port, sending `token` if given."""
        creds = tls.tls_channel_credentials(self.pki.layout.ca_cert, token=token)
        return self._open(self.client_target, creds)

    def _open(self, target: str, creds: grpc.ChannelCredentials) -> grpc.aio.Channel:
        channel = grpc.aio.secure_channel(target, creds)
        self.channels.append(channel)
        return channel


@asynccontextmanager
async def serve(
    pki: Pki,
    *,
    limits: LimitSettings | None = None,
    clock: Callable[[], float] | None = None,
    revocations: RevocationChecker | None = None,
    separate: bool = False,
    tokens: TokenAuthenticator | None = None,
) -> AsyncIterator[Harness]:
    """Start the test server with the full security stack and the error translator.

    `separate` installs audit, auth and limits as three interceptors instead of the stack's
    single combined one, which must behave the same.
    """
    settings = AuthSettings(
        tokens=tokens or token_store(), revocations=revocations or pki.revocations()
    )
    stack = (
        SecurityStack.build(settings, limits, clock=clock)
        if clock
        else SecurityStack.build(settings, limits)
    )
    layers = [stack.audit, stack.auth, stack.limits] if separate else stack.interceptors
    server = grpc.aio.server(interceptors=[*layers, ErrorTranslationInterceptor()])
    calls = servicers.Calls()
    site_service = servicers.SiteService(calls)
    site_grpc.add_SiteServiceServicer_to_server(site_service, server)
    job_grpc.add_JobServiceServicer_to_server(servicers.JobService(calls), server)  # type: ignore[abstract]
    fed_grpc.add_FederationServiceServicer_to_server(servicers.FederationService(calls), server)  # type: ignore[abstract]
    reb_grpc.add_RebalanceServiceServicer_to_server(servicers.RebalanceService(calls), server)  # type: ignore[abstract]
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    layout = pki.layout
    creds = (layout.ca_cert, layout.broker_cert, layout.broker_key)
    site_port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(*creds, require_client_auth=True)
    )
    client_port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(*creds, require_client_auth=False)
    )
    await server.start()
    harness = Harness(
        pki, f"127.0.0.1:{site_port}", f"127.0.0.1:{client_port}", stack, calls, site_service
    )
    try:
        yield harness
    finally:
        for channel in harness.channels:
            await channel.close()
        await server.stop(0)


def write_token_file(path: Path) -> Path:
    """The test tokens as a token file."""
    token_store().save(path)
    return path
