"""The security layers (audit, auth, limits) as one interceptor: one handler wrapper per call.

Three interceptors in a row each wrap the handler in a coroutine and an async context manager;
on the submission path that bookkeeping cost more than the checks themselves. Here the layers
run in the same order with the same effects, but a unary call goes through one plain coroutine.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import grpc
import grpc.aio

from broker.security.audit import AuditInterceptor
from broker.security.handlers import (
    Call,
    Continuation,
    Guard,
    WrappedHandlers,
    decode_or_refuse,
    decoder_of,
    wrap_handler,
)
from broker.security.interceptors import AuthInterceptor
from broker.security.limits import LimitsInterceptor


class SecurityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Audit (outermost, so refused calls are recorded), then auth, then limits, then the call.

    Behaves as the three interceptors installed in that order; they stay usable on their own.
    """

    def __init__(
        self, audit: AuditInterceptor, auth: AuthInterceptor, limits: LimitsInterceptor
    ) -> None:
        self.audit = audit
        self.auth = auth
        self.limits = limits
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.auth.applies(method):
            return handler  # open methods: health checking and reflection
        return self._wrapped.get(method, handler, lambda: self._wrap(handler, method))

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            # gRPC hands over the bytes undecoded: the call is decoded once admitted, so a
            # malformed call is authenticated, rate limited and audited like any other.
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, handler),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        return wrap_handler(
            handler, method, self._nested_guard(handler, method), decode_inside=True
        )

    def _unary(
        self, behavior: Callable[..., Any], method: str, handler: grpc.RpcMethodHandler
    ) -> Callable[..., Any]:
        audit = self.audit if self.audit.audits(method) else None
        auth = self.auth
        limits = self.limits
        charge = limits.charges(method)
        deadline = limits.has_deadline(handler)
        decode = decoder_of(handler)

        async def guarded(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            call = Call(method, context, None)
            started_s = time.monotonic()
            error: BaseException | None = None
            try:
                await auth.authenticate(call)
                request = call.request = await decode_or_refuse(context, decode, raw)
                await auth.authorize(call)
                if charge:
                    await limits.charge_tenant(call)
                answer = behavior(request, context)
                if inspect.isawaitable(answer):
                    answer = await (limits.within_deadline(call, answer) if deadline else answer)
                call.response = answer
            except BaseException as exc:
                error = exc
                raise
            finally:
                if audit is not None:
                    audit.record(call, started_s, error)
            return call.response

        return guarded

    def _nested_guard(self, handler: grpc.RpcMethodHandler, method: str) -> Guard:
        """The three layers' guards entered one inside the other (streaming methods)."""
        audit = self.audit.guard if self.audit.audits(method) else None
        limits = self.limits.guard_for(handler, method)
        auth = self.auth.guard

        @asynccontextmanager
        async def guard(call: Call) -> AsyncIterator[None]:
            async with _entered(audit, call), auth(call), _entered(limits, call):
                yield

        return guard


def _entered(guard: Guard | None, call: Call) -> AbstractAsyncContextManager[None]:
    return guard(call) if guard is not None else nullcontext()
