"""Turns the broker's security settings into listeners, credentials and interceptors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio

from broker.security.certs import CaLayout
from broker.security.identity import Revocations, server_credentials
from broker.security.interceptors import AuthSettings, SecurityCounters
from broker.security.limits import LimitSettings
from broker.security.principal import Principal, Role
from broker.security.revocation import RevocationChecker, RevocationFile
from broker.security.stack import SecurityStack
from broker.security.tokens import TokenFile, TokenStore
from broker.security.transport import AdditionalPort, check_insecure_allowed
from computenet.address import Address

ANONYMOUS = Principal(tenant="default", role=Role.OPERATOR, name="anonymous")
"""Who a token-less client is in insecure loopback mode without a token file."""


class SecurityConfigError(ValueError):
    """The security settings do not make a servable broker."""


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """How the broker authenticates agents and clients."""

    tls_dir: Path | None = None
    """Folder made by `computenet-broker certs init` (ca.pem, broker.pem, broker-key.pem)."""
    agent_listen: Address | None = None
    """Where agents connect with mTLS; defaults to the client host on a free port."""
    tokens_path: Path | None = None
    """Client token file (`computenet-broker tokens add`); required with TLS."""
    revocations_path: Path | None = None
    """YAML of revoked certificate serials and sites, re-read when it changes."""
    insecure: bool = False
    """Plaintext on loopback only, for demos and tests; must be asked for explicitly."""
    limits: LimitSettings = field(default_factory=LimitSettings)
    """Per-call limits (submission rate per tenant, streams per site, handler deadline)."""


@dataclass
class ServerSecurity:
    """What the server needs: interceptors, client-port credentials and the agents' port."""

    interceptors: list[grpc.aio.ServerInterceptor]
    credentials: grpc.ServerCredentials | None
    agent_port: AdditionalPort | None
    require_site_certificate: bool
    counters: SecurityCounters
    tokens: TokenStore | TokenFile = field(default_factory=TokenStore)
    """The client tokens (the console logs in with the same ones)."""
    anonymous: Principal | None = None
    """Who a token-less client is (insecure mode without a token file), else None."""
    tls_dir: Path | None = None
    """The broker's certificate folder when TLS is on (the console serves with it too)."""


def build_security(settings: SecuritySettings, listen: Address) -> ServerSecurity:
    """Check the settings and assemble the server's security; raises SecurityConfigError."""
    if settings.tls_dir is None and not settings.insecure:
        raise SecurityConfigError(
            "TLS is required: pass --tls-dir (make one with `computenet-broker certs init`) "
            "and --tokens, or --insecure on a loopback address"
        )
    if settings.tls_dir is not None and settings.insecure:
        raise SecurityConfigError("--insecure and --tls-dir exclude each other")
    try:
        check_insecure_allowed(listen.host, settings.insecure)
    except ValueError as exc:
        raise SecurityConfigError(str(exc)) from None
    revocations: RevocationChecker = (
        RevocationFile(settings.revocations_path)
        if settings.revocations_path is not None
        else Revocations()
    )
    tokens = TokenFile(settings.tokens_path) if settings.tokens_path is not None else None
    if settings.tls_dir is None:
        auth = AuthSettings(
            tokens=tokens or TokenStore(),
            require_site_certificate=False,
            revocations=revocations,
            anonymous=None if tokens is not None else ANONYMOUS,
        )
        stack = SecurityStack.build(auth, settings.limits)
        return ServerSecurity(
            stack.interceptors,
            None,
            None,
            False,
            stack.counters,
            tokens=tokens or TokenStore(),
            anonymous=auth.anonymous,
        )
    if tokens is None:
        raise SecurityConfigError("TLS mode needs --tokens FILE (`computenet-broker tokens add`)")
    layout = CaLayout(settings.tls_dir)
    for path in (layout.ca_cert, layout.broker_cert, layout.broker_key):
        if not Path(path).is_file():
            raise SecurityConfigError(f"{path} is missing; run `computenet-broker certs init`")
    stack = SecurityStack.build(
        AuthSettings(tokens=tokens, revocations=revocations), settings.limits
    )
    mtls = server_credentials(
        layout.ca_cert, layout.broker_cert, layout.broker_key, require_client_auth=True
    )
    tls = server_credentials(
        layout.ca_cert, layout.broker_cert, layout.broker_key, require_client_auth=False
    )
    agent_listen = settings.agent_listen or Address(listen.host, 0)
    return ServerSecurity(
        stack.interceptors,
        tls,
        AdditionalPort(agent_listen, mtls),
        True,
        stack.counters,
        tokens=tokens,
        tls_dir=settings.tls_dir,
    )
