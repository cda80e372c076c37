"""Abuse limits: per-tenant submission rate, Connect streams per site, a server-side deadline
for unary calls, and the transport options (message size, keepalive) the server runs with."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import grpc
import grpc.aio

from broker.security import methods
from broker.security.deadlines import Deadlines
from broker.security.handlers import (
    Call,
    Continuation,
    Guard,
    WrappedHandlers,
    has_unary_response,
    refuse,
    wrap_handler,
)
from broker.security.principal import current_principal, current_site
from computenet.errors import DeadlineExceededError, ResourceExhaustedError

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


@dataclass(slots=True)
class TokenBucket:
    """Admits `rate_per_s` calls per second on average and `burst` at once; starts full."""

    rate_per_s: float
    burst: float
    tokens: float = field(init=False)
    updated_s: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate_per_s > 0 and burst >= 1")
        self.tokens = float(self.burst)

    def wait_s(self, now_s: float) -> float:
        """0.0 if a token is free at `now_s`, else the seconds until one is; spends nothing."""
        tokens = self._tokens_at(now_s)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s

    def full(self, now_s: float) -> bool:
        """True if the bucket has refilled to its burst at `now_s` (it forgot all use)."""
        return self._tokens_at(now_s) >= self.burst

    def _tokens_at(self, now_s: float) -> float:
        if self.updated_s is None or now_s <= self.updated_s:
            return self.tokens
        elapsed = now_s - self.updated_s
        return min(float(self.burst), self.tokens + elapsed * self.rate_per_s)

    def take(self, now_s: float) -> float:
        """Spend one token at `now_s`: 0.0 if admitted, else the seconds until one is free."""
        if self.updated_s is not None and now_s > self.updated_s:
            elapsed = now_s - self.updated_s
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        if self.updated_s is None or now_s > self.updated_s:
            self.updated_s = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class TenantRateLimiter:
    """One token bucket per tenant, so a flooding tenant cannot slow the others down."""

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        TokenBucket(rate_per_s, burst)  # validates the parameters once, up front
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, tenant: str) -> float:
        """0.0 if the tenant may go on now, else the seconds to wait."""
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = TokenBucket(self._rate_per_s, self._burst)
        return bucket.take(self._clock())


class StreamLimiter:
    """Counts open streams per key (site id) and refuses more than `max_per_key`."""

    def __init__(self, max_per_key: int) -> None:
        self.max_per_key = max_per_key
        self._open: dict[str, int] = {}

    def try_acquire(self, key: str) -> bool:
        """Take a slot for `key`; False if all are taken."""
        if self._open.get(key, 0) >= self.max_per_key:
            return False
        self._open[key] = self._open.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        """Give back a slot taken by `try_acquire`."""
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)

    def open_streams(self, key: str) -> int:
        """Streams open for `key` now."""
        return self._open.get(key, 0)


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Per-call limits; the defaults suit one broker serving tens of tenants and sites."""

    submit_rate_per_s: float = 5.0
    """Sustained submissions per second per tenant."""
    submit_burst: int = 20
    """Submissions a tenant may make at once after being quiet."""
    rate_limited_methods: frozenset[str] = frozenset({methods.SUBMIT_JOB})
    """Methods charged to the tenant's submission bucket."""
    read_rate_per_s: float = 50.0
    """Sustained reads (gets, lists, watches started, plans) per second per tenant."""
    read_burst: int = 100
    """Reads a tenant may make at once after being quiet."""
    read_limited_methods: frozenset[str] = methods.READ_METHODS
    """Methods charged to the tenant's read bucket (apart from the submission bucket, so a
    tenant reading hard can still submit)."""
    auth_failures_burst: int = 20
    """Failed authentications a peer address may make in a row before it is throttled."""
    auth_failures_per_s: float = 0.5
    """Failed authentications per second a throttled peer address may go on making."""
    max_streams_per_site: int = 2
    """Concurrent `Connect` streams per site id (a reconnect may briefly overlap the old one)."""
    stream_retry_after_s: float = 5.0
    """Retry hint for an agent refused for too many streams."""
    handler_timeout_s: float | None = 30.0
    """Server-side deadline of unary calls; None for none."""


class LimitsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Applies `LimitSettings`; install it after `AuthInterceptor`, which binds the identity."""

    def __init__(
        self, settings: LimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.rates = TenantRateLimiter(
            settings.submit_rate_per_s, settings.submit_burst, clock=clock
        )
        self.read_rates = TenantRateLimiter(
            settings.read_rate_per_s, settings.read_burst, clock=clock
        )
        self.streams = StreamLimiter(settings.max_streams_per_site)
        timeout_s = settings.handler_timeout_s
        self.deadlines = Deadlines(timeout_s) if timeout_s is not None else None
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or methods.is_open(method):
            return handler
        return self._wrapped.get(method, handler, lambda: self._wrap(handler, method))

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        guard = self.guard_for(handler, method)
        return handler if guard is None else wrap_handler(handler, method, guard)

    def charges(self, method: str) -> bool:
        """True if calls of `method` are charged to one of the tenant's rate buckets."""
        s = self.settings
        return method in s.rate_limited_methods or method in s.read_limited_methods

    def has_deadline(self, handler: grpc.RpcMethodHandler) -> bool:
        """True if the server-side deadline applies to the method (unary responses only)."""
        return self.deadlines is not None and has_unary_response(handler)

    def guard_for(self, handler: grpc.RpcMethodHandler, method: str) -> Guard | None:
        """The limits `method` needs, as a guard; None if no limit applies to it."""
        deadline = self.has_deadline(handler)
        charge = self.charges(method)
        if not deadline and not charge and method != methods.CONNECT:
            return None

        @asynccontextmanager
        async def guard(call: Call) -> AsyncIterator[None]:
            if charge:
                await self.charge_tenant(call)
            if call.method == methods.CONNECT:
                async with self._stream_slot(call):
                    yield
            elif deadline:
                async with self._deadline(call):
                    yield
            else:
                yield

        return guard

    async def charge_tenant(self, call: Call) -> None:
        """Spend a token of the caller's tenant, or abort with RESOURCE_EXHAUSTED."""
        principal = current_principal()
        tenant = principal.tenant if principal else ""
        submits = call.method in self.settings.rate_limited_methods
        wait_s = (self.rates if submits else self.read_rates).check(tenant)
        if wait_s > 0:
            what = "submits" if submits else "reads"
            log.info(
                "rate limited tenant=%s method=%s retry_after_s=%.3f",
                tenant or "-",
                methods.short_name(call.method),
                wait_s,
            )
            await refuse(
                call.context,
                ResourceExhaustedError(f"tenant {tenant!r} {what} too fast", retry_after_s=wait_s),
            )

    async def within_deadline(self, call: Call, answer: Awaitable[T]) -> T:
        """Await a unary call's answer, aborting with DEADLINE_EXCEEDED if it comes too late."""
        assert self.deadlines is not None
        deadline = self.deadlines.start()
        try:
            return await answer
        except asyncio.CancelledError:
            if deadline.timed_out():
                await self._timed_out(call)
            raise
        finally:
            self.deadlines.finish(deadline)

    @asynccontextmanager
    async def _deadline(self, call: Call) -> AsyncIterator[None]:
        assert self.deadlines is not None
        deadline = self.deadlines.start()
        try:
            yield
        except asyncio.CancelledError:
            if deadline.timed_out():
                await self._timed_out(call)
            raise
        finally:
            self.deadlines.finish(deadline)

    async def _timed_out(self, call: Call) -> NoReturn:
        timeout_s = self.settings.handler_timeout_s
        log.warning("handler timed out method=%s timeout_s=%s", call.method, timeout_s)
        await refuse(call.context, DeadlineExceededError(f"no answer within {timeout_s:g} s"))

    @asynccontextmanager
    async def _stream_slot(self, call: Call) -> AsyncIterator[None]:
        site = current_site()
        if site is None:
            yield
            return
        if not self.streams.try_acquire(site):
            log.warning("too many streams site=%s limit=%d", site, self.streams.max_per_key)
            await refuse(
                call.context,
                ResourceExhaustedError(
                    f"site {site!r} has too many open streams",
                    retry_after_s=self.settings.stream_retry_after_s,
                ),
            )
        try:
            yield
        finally:
            self.streams.release(site)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Transport limits of the broker's gRPC server."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Largest message received or sent."""
    keepalive_time_s: float = 20.0
    """The server pings a connection idle this long, to find dead peers."""
    keepalive_timeout_s: float = 10.0
    """A ping unanswered this long closes the connection."""
    min_client_ping_interval_s: float = 10.0
    """Clients pinging more often than this get strikes (agents ping every 30 s)."""
    max_ping_strikes: int = 2
    """Strikes before GOAWAY `too_many_pings`."""
    max_concurrent_streams: int = 100
    """Concurrent RPCs per connection."""
    max_connection_idle_s: float = 300.0
    """A connection without calls this long is closed (clients reconnect transparently)."""
    max_connection_age_s: float | None = None
    """Connections are recycled after this long; None since agents hold one long stream."""
    max_connection_age_grace_s: float = 30.0
    """Time calls get to finish when a connection reaches its age."""


def server_options(limits: ServerLimits | None = None) -> list[tuple[str, int]]:
    """The `options` for `grpc.aio.server(...)` enforcing `limits`."""
    lim = limits or ServerLimits()
    options = [
        ("grpc.max_receive_message_length", lim.max_message_bytes),
        ("grpc.max_send_message_length", lim.max_message_bytes),
        ("grpc.keepalive_time_ms", round(lim.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", round(lim.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            round(lim.min_client_ping_interval_s * 1000),
        ),
        ("grpc.http2.max_ping_strikes", lim.max_ping_strikes),
        ("grpc.max_concurrent_streams", lim.max_concurrent_streams),
        ("grpc.max_connection_idle_ms", round(lim.max_connection_idle_s * 1000)),
        ("grpc.so_reuseport", 0),
    ]
    if lim.max_connection_age_s is not None:
        options += [
            ("grpc.max_connection_age_ms", round(lim.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", round(lim.max_connection_age_grace_s * 1000)),
        ]
    return options
