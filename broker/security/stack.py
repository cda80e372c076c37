"""Assembles the security interceptors in the one order that works: audit, auth, limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc.aio

from broker.security.audit import AuditInterceptor
from broker.security.interceptors import AuthInterceptor, AuthSettings, SecurityCounters
from broker.security.limits import LimitSettings, LimitsInterceptor
from broker.security.pipeline import SecurityInterceptor
from broker.security.throttle import AuthThrottle, ThrottleSettings


@dataclass
class SecurityStack:
    """The broker's security interceptors and the counters tests and metrics read."""

    audit: AuditInterceptor
    auth: AuthInterceptor
    limits: LimitsInterceptor
    counters: SecurityCounters = field(default_factory=SecurityCounters)
    pipeline: SecurityInterceptor = field(init=False)
    """The three layers as the one interceptor the server installs."""

    def __post_init__(self) -> None:
        self.pipeline = SecurityInterceptor(self.audit, self.auth, self.limits)

    @classmethod
    def build(
        cls,
        auth: AuthSettings,
        limits: LimitSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> SecurityStack:
        """Interceptors for `auth` and `limits` sharing one counters object."""
        counters = SecurityCounters()
        limits = limits or LimitSettings()
        throttle = AuthThrottle(
            ThrottleSettings(limits.auth_failures_burst, limits.auth_failures_per_s), clock=clock
        )
        return cls(
            audit=AuditInterceptor(),
            auth=AuthInterceptor(auth, counters, throttle=throttle),
            limits=LimitsInterceptor(limits, clock=clock),
            counters=counters,
        )

    @property
    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """For `start_server(interceptors=...)`, before the error translator.

        Audit is outermost so it records refused calls too; auth binds the identity the limits
        (per-tenant rate, per-site streams) are keyed on. The three run as one interceptor
        (`SecurityInterceptor`), which keeps that order at a third of the per-call cost.
        """
        return [self.pipeline]
