"""The broker's one translator at the RPC edge: typed errors to rich statuses, others INTERNAL."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

import grpc
import grpc.aio

from broker.store.errors import storage_unavailable
from computenet.errors import ComputeNetError, InternalError, NotLeaderError
from computenet.status import error_to_status, status_code_for

log = logging.getLogger(__name__)

REQUEST_ID_METADATA_KEY = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

F = TypeVar("F", bound=Callable[..., Any])


def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's request id if it sent a sane one, else a fresh one to grep the log for."""
    try:
        metadata = context.invocation_metadata() or ()
    except Exception:  # a context in a half-torn-down call has nothing useful to offer
        metadata = ()
    for key, value in metadata:
        if (
            key == REQUEST_ID_METADATA_KEY
            and isinstance(value, str)
            and _SAFE_REQUEST_ID.match(value)
        ):
            return value
    return uuid.uuid4().hex[:16]


async def abort_for(exc: Exception, context: grpc.aio.ServicerContext, rpc: str) -> NoReturn:
    """Abort the call for `exc`: its own status if typed, UNAVAILABLE for a storage fault that
    reached here untranslated, a sanitised INTERNAL otherwise."""
    exc = storage_unavailable(exc) or exc
    if isinstance(exc, ComputeNetError):
        code = status_code_for(exc)
        # Caller mistakes are routine; only server-side faults deserve a warning.
        server_side = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE)
        level = logging.WARNING if code in server_side else logging.INFO
        if isinstance(exc, NotLeaderError):
            level = logging.DEBUG  # a follower redirecting callers: routine, and many at a failover
        log.log(level, "rpc failed rpc=%s reason=%s message=%s", rpc, exc.reason, exc.message)
        await context.abort_with_status(error_to_status(exc))
    request_id = _request_id(context)
    # The traceback stays in the broker log; the caller only gets the id to find it.
    log.error("unexpected error rpc=%s request_id=%s", rpc, request_id, exc_info=exc)
    internal = InternalError(f"internal error; see broker log, request_id={request_id}")
    await context.abort_with_status(error_to_status(internal))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def _wrap_coroutine(method: Callable[..., Awaitable[Any]], rpc: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context") or args[-1]
        try:
            return await method(*args, **kwargs)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise  # the call is already ending: an abort unwinding, or the client went away
        except Exception as exc:
            await abort_for(exc, context, rpc)

    return wrapper


def _wrap_async_gen(method: Callable[..., AsyncIterator[Any]], rpc: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        context = kwargs.get("context") or args[-1]
        try:
            async for item in method(*args, **kwargs):
                yield item
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await abort_for(exc, context, rpc)

    return wrapper


def translate_errors(method: F) -> F:
    """Decorate an async servicer method (coroutine or async generator) with the translator.

    The method's last positional argument must be the grpc.aio servicer context.
    """
    rpc = getattr(method, "__qualname__", repr(method))
    if inspect.isasyncgenfunction(method):
        return cast(F, _wrap_async_gen(method, rpc))
    if inspect.iscoroutinefunction(method):
        return cast(F, _wrap_coroutine(method, rpc))
    raise TypeError(f"translate_errors needs an async def or async generator, got {rpc}")


class ErrorTranslationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Applies the translator to every async handler of a server; sync handlers pass as they are."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _wrap_handler(handler, handler_call_details.method)


def _wrap_behavior(behavior: Callable[..., Any] | None, rpc: str) -> Callable[..., Any] | None:
    if behavior is None:
        return None
    if inspect.isasyncgenfunction(behavior):
        return _wrap_async_gen(behavior, rpc)
    if inspect.iscoroutinefunction(behavior):
        return _wrap_coroutine(behavior, rpc)
    return behavior


def _wrap_handler(handler: grpc.RpcMethodHandler, rpc: str) -> grpc.RpcMethodHandler:
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_behavior(handler.unary_unary, rpc), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_behavior(handler.unary_stream, rpc), **serializers
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_behavior(handler.stream_unary, rpc), **serializers
        )
    return grpc.stream_stream_rpc_method_handler(
        _wrap_behavior(handler.stream_stream, rpc), **serializers
    )
