"""The authentication and authorisation interceptor: every call proves who it is before any
handler runs; agents by site certificate, clients by bearer token, operators by role."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
import grpc.aio

from broker.security import methods
from broker.security.handlers import Call, Continuation, WrappedHandlers, refuse, wrap_handler
from broker.security.identity import Revocations, site_certificate_from_context
from broker.security.principal import Principal, bind_principal, bind_site, current_principal
from broker.security.revocation import Recheck, RevocationChecker, StreamWatch
from broker.security.throttle import AuthThrottle, peer_address
from broker.security.tokens import TokenAuthenticator, TokenStore
from computenet.errors import (
    ComputeNetError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)

log = logging.getLogger(__name__)

AUTHORIZATION_METADATA_KEY = "authorization"


@dataclass
class SecurityCounters:
    """How many calls the auth layer refused (by status) and let through to a handler."""

    refused: Counter[str] = field(default_factory=Counter)
    """Refused calls by status code name, e.g. `UNAUTHENTICATED`."""
    admitted: int = 0
    """Calls handed to their handler."""

    @property
    def refused_total(self) -> int:
        """All refused calls."""
        return sum(self.refused.values())


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """What the auth layer accepts."""

    tokens: TokenAuthenticator = field(default_factory=TokenStore)
    """Client tokens: a `TokenStore`, or a `TokenFile` that follows edits of the file."""
    require_site_certificate: bool = True
    """Agent calls need a verified site certificate; False only in insecure loopback mode."""
    revocations: RevocationChecker = field(default_factory=Revocations)
    """Certificates (serials, whole sites) refused although they verify: `Revocations`, or a
    `RevocationFile` that follows edits of the file."""
    anonymous: Principal | None = None
    """Principal for client calls without a token; None (the default) refuses them. Only for
    the insecure loopback demo."""


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` header, or None if there is none."""
    for key, value in metadata or ():
        if key.lower() != AUTHORIZATION_METADATA_KEY or not isinstance(value, str):
            continue
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return ""
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses unauthenticated or unauthorised calls before their handler runs.

    Agent methods (`SiteService`) need a verified, unrevoked site certificate; client methods
    need a valid bearer token, and operator-only methods the operator role. Health checking and
    reflection stay open. The identity is bound for the handler: `current_principal()`,
    `current_site()`.
    """

    def __init__(
        self,
        settings: AuthSettings,
        counters: SecurityCounters | None = None,
        *,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters if counters is not None else SecurityCounters()
        self.throttle = throttle if throttle is not None else AuthThrottle()
        self.watch = StreamWatch()
        """Open calls whose credentials are checked again while they run."""
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies(method):
            return handler
        return self._wrapped.get(method, handler, lambda: wrap_handler(handler, method, self.guard))

    @staticmethod
    def applies(method: str) -> bool:
        """True if calls of `method` must prove who they are (all but the open services)."""
        return not methods.is_open(method)

    @asynccontextmanager
    async def guard(self, call: Call) -> AsyncIterator[None]:
        """Admit the call (see `admit`) before its handler runs; while it runs, end it
        (UNAUTHENTICATED) within seconds if its certificate or token is revoked."""
        await self.admit(call)
        recheck = self._recheck_of(call)
        if recheck is None:
            yield
            return
        stream = self.watch.open(recheck)
        try:
            yield
        except asyncio.CancelledError:
            error = stream.ended_by_revocation()
            if error is not None:
                log.warning("open call ended: credentials revoked method=%s", call.method)
                await refuse(call.context, error)
            raise
        finally:
            self.watch.close(stream)

    def _recheck_of(self, call: Call) -> Recheck | None:
        """How to check the call's credentials again later; None if it has none to revoke."""
        if methods.is_site_method(call.method):
            identity = site_certificate_from_context(call.context)
            if identity is None:
                return None
            revocations = self.settings.revocations

            def site_revoked() -> ComputeNetError | None:
                if revocations.is_revoked(identity):
                    return UnauthenticatedError("this certificate has been revoked")
                return None

            return site_revoked
        token = bearer_token(call.context.invocation_metadata())
        if not token:
            return None
        tokens = self.settings.tokens

        def token_revoked() -> ComputeNetError | None:
            if tokens.authenticate(token) is None:
                return UnauthenticatedError("this token has been revoked")
            return None

        return token_revoked

    async def admit(self, call: Call) -> None:
        """Bind the caller's identity, or abort the call if it has none or may not call."""
        await self.authenticate(call)
        await self.authorize(call)

    async def authenticate(self, call: Call) -> None:
        """Bind the caller's identity, or abort the call (UNAUTHENTICATED) if it has none.

        A peer address that failed too often is refused (RESOURCE_EXHAUSTED with a retry hint)
        before its credentials are even looked at.
        """
        peer = peer_address(call.context.peer())
        wait_s = self.throttle.wait_s(peer)
        if wait_s > 0:
            await self._refuse(
                call,
                ResourceExhaustedError(
                    "too many failed authentications from this address", retry_after_s=wait_s
                ),
            )
        try:
            if methods.is_site_method(call.method):
                self._authenticate_site(call)
            else:
                self._authenticate_client(call)
        except UnauthenticatedError as exc:
            self.throttle.failed(peer)
            await self._refuse(call, exc)
        except ComputeNetError as exc:
            await self._refuse(call, exc)

    async def authorize(self, call: Call) -> None:
        """Abort an authenticated call to an operator method by a non-operator; else count the
        call as admitted."""
        principal = current_principal()
        if (
            call.method in methods.OPERATOR_METHODS
            and principal is not None
            and not principal.is_operator
        ):
            error = PermissionDeniedError(f"{methods.short_name(call.method)} is for operators")
            await self._refuse(call, error)
        self.counters.admitted += 1

    async def _refuse(self, call: Call, exc: ComputeNetError) -> NoReturn:
        self.counters.refused[exc.reason] += 1
        log.info(
            "call refused method=%s reason=%s peer=%s",
            methods.short_name(call.method),
            exc.reason,
            call.context.peer(),
        )
        await refuse(call.context, exc)

    def _authenticate_site(self, call: Call) -> None:
        identity = site_certificate_from_context(call.context)
        if identity is None:
            if self.settings.require_site_certificate:
                raise UnauthenticatedError("a site certificate is required")
            bind_site(None)
            return
        if self.settings.revocations.is_revoked(identity):
            log.warning(
                "revoked certificate refused site=%s serial=%x", identity.site_id, identity.serial
            )
            raise UnauthenticatedError("this certificate has been revoked")
        bind_site(identity.site_id)

    def _authenticate_client(self, call: Call) -> None:
        token = bearer_token(call.context.invocation_metadata())
        principal: Principal | None
        if token is None:
            principal = self.settings.anonymous
            if principal is None:
                raise UnauthenticatedError("this call needs `authorization: Bearer <token>`")
        else:
            principal = self.settings.tokens.authenticate(token)
            if principal is None:
                raise UnauthenticatedError("invalid token")
        bind_principal(principal)
