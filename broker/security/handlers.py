"""Wraps a grpc.aio method handler in a guard that runs before (and around) the real handler."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from computenet.errors import ComputeNetError, InvalidArgumentError
from computenet.status import error_to_status


@dataclass(slots=True)
class Call:
    """One RPC as a guard sees it."""

    method: str
    """Full method path, `/computenet.v1.JobService/SubmitJob`."""
    context: grpc.aio.ServicerContext
    """The call's servicer context."""
    request: Any | None
    """The request message, or None for client-streaming methods."""
    response: Any | None = None
    """The response message once a unary handler returned it."""


Guard = Callable[[Call], AbstractAsyncContextManager[None]]
"""Entered before the handler runs (raise/abort to refuse the call), exited after it ends."""

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

Decode = Callable[[Any], Any]
"""Turns a request as it came off the wire into the message the handler takes."""


def _identity(request: Any) -> Any:
    return request


def decoder_of(handler: grpc.RpcMethodHandler) -> Decode:
    """The handler's request deserializer, to call once the caller has been admitted."""
    deserializer = handler.request_deserializer
    return deserializer if deserializer is not None else _identity


async def decode_or_refuse(context: grpc.aio.ServicerContext, decode: Decode, raw: Any) -> Any:
    """`decode(raw)`, aborting the call with INVALID_ARGUMENT if the bytes do not parse."""
    try:
        return decode(raw)
    except (DecodeError, RecursionError, ValueError):
        await refuse(
            context, InvalidArgumentError("the request message is not a valid protobuf encoding")
        )


async def _decoded(
    requests: AsyncIterator[Any], decode: Decode, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    async for request in requests:
        yield await decode_or_refuse(context, decode, request)


async def refuse(context: grpc.aio.ServicerContext, error: ComputeNetError) -> NoReturn:
    """Abort the call with the catalog's status for `error`; always raises AbortError."""
    await context.abort_with_status(error_to_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


async def _call_unary(behavior: Callable[..., Any], request: Any, context: Any) -> Any:
    result = behavior(request, context)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _iterate(result: Any) -> AsyncIterator[Any]:
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:
        for item in result:
            yield item


async def _admitted(
    call: Call, request: Any, streaming_request: bool, decode: Decode | None
) -> Any:
    """The request as the handler takes it, decoded now (inside the guard) if asked to."""
    if decode is None:
        return request
    if streaming_request:
        return _decoded(request, decode, call.context)
    call.request = await decode_or_refuse(call.context, decode, request)
    return call.request


def _unary_response(
    behavior: Callable[..., Any],
    method: str,
    guard: Guard,
    streaming_request: bool,
    decode: Decode | None,
) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = Call(method, context, None if streaming_request or decode else request)
        async with guard(call):
            request = await _admitted(call, request, streaming_request, decode)
            call.response = await _call_unary(behavior, request, context)
        return call.response

    return wrapper


def _stream_response(
    behavior: Callable[..., Any],
    method: str,
    guard: Guard,
    streaming_request: bool,
    decode: Decode | None,
) -> Callable[..., Any]:
    def call_of(request: Any, context: grpc.aio.ServicerContext) -> Call:
        return Call(method, context, None if streaming_request or decode else request)

    if inspect.iscoroutinefunction(behavior):
        # A reader/writer-style handler writes through the context and returns None.
        async def writer(request: Any, context: grpc.aio.ServicerContext) -> None:
            call = call_of(request, context)
            async with guard(call):
                await behavior(await _admitted(call, request, streaming_request, decode), context)

        return writer

    async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = call_of(request, context)
        async with guard(call):
            request = await _admitted(call, request, streaming_request, decode)
            async for item in _iterate(behavior(request, context)):
                yield item

    return generator


def wrap_handler(
    handler: grpc.RpcMethodHandler, method: str, guard: Guard, *, decode_inside: bool = False
) -> grpc.RpcMethodHandler:
    """A handler that enters `guard` and only then calls the original behaviour.

    Contextvars set while entering the guard are visible to the original handler, since both
    run in the call's task; sync handlers run on the event loop thread. With `decode_inside`
    gRPC hands over the request bytes as they came and the handler's deserializer runs only
    once the guard has admitted the call, so nothing of an unauthenticated call is parsed.
    """
    decode = decoder_of(handler) if decode_inside else None
    serializers = {
        "request_deserializer": None if decode_inside else handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _unary_response(handler.unary_unary, method, guard, False, decode), **serializers
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _unary_response(handler.stream_unary, method, guard, True, decode), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _stream_response(handler.unary_stream, method, guard, False, decode), **serializers
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_response(handler.stream_stream, method, guard, True, decode), **serializers
    )


def has_unary_response(handler: grpc.RpcMethodHandler) -> bool:
    """True if the method answers with one message (so a server-side deadline fits it)."""
    return handler.unary_unary is not None or handler.stream_unary is not None


class WrappedHandlers:
    """Remembers the wrapper built for each (method, handler), so an interceptor wraps a method
    once rather than on every call (gRPC asks interceptors for the handler on every call)."""

    def __init__(self) -> None:
        self._wrapped: dict[
            tuple[str, int], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]
        ] = {}

    def get(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        build: Callable[[], grpc.RpcMethodHandler],
    ) -> grpc.RpcMethodHandler:
        """The wrapper of `handler` for `method`, built by `build` the first time."""
        key = (method, id(handler))
        cached = self._wrapped.get(key)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = build()
        self._wrapped[key] = (handler, wrapped)
        return wrapped
