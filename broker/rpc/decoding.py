"""Turns undecodable request bytes into INVALID_ARGUMENT instead of gRPC's generic UNKNOWN."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from broker.security.handlers import WrappedHandlers
from computenet.errors import InvalidArgumentError
from computenet.status import error_to_status


class _Malformed:
    """Stands for a request message whose bytes did not parse."""

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return _Malformed(exc)

    return parse


async def _refuse(context: grpc.aio.ServicerContext) -> None:
    error = InvalidArgumentError("the request message is not a valid protobuf encoding")
    await context.abort_with_status(error_to_status(error))


def _checked_unary(behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await _refuse(context)
        return await behavior(request, context)

    return handler


def _checked_unary_stream(behavior: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, _Malformed):
            await _refuse(context)
        async for item in behavior(request, context):
            yield item

    return handler


def _checked_requests(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    async def checked() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _Malformed):
                await _refuse(context)
            yield request

    return checked()


def _checked_stream_stream(behavior: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in behavior(_checked_requests(requests, context), context):
            yield item

    return handler


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Outermost interceptor: a message that does not decode is the caller's error."""

    def __init__(self) -> None:
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self._wrapped.get(
            handler_call_details.method, handler, lambda: _lenient_handler(handler)
        )


def _lenient_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The handler with a deserializer that lets undecodable requests reach the check."""
    parse = _lenient(handler.request_deserializer)
    out = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_checked_unary(handler.unary_unary), parse, out)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _checked_unary_stream(handler.unary_stream), parse, out
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _checked_stream_stream(handler.stream_stream), parse, out
        )
    return handler
