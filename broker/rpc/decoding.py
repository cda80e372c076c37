"""Decodes request bytes and refuses what no handler should see: undecodable bytes, unknown enum
values and numbers out of range become INVALID_ARGUMENT with field violations.

The interceptor sits inside the security pipeline, which hands it the raw bytes only after the
caller is authenticated (and inside the audit record), so a malformed call is still audited.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from broker.security import methods
from broker.security.handlers import WrappedHandlers
from computenet.errors import FieldViolation, InvalidArgumentError
from computenet.status import error_to_status

MAX_INT64 = 2**63 - 1
"""The largest number a database column (SQLite INTEGER, PostgreSQL BIGINT) holds."""
MAX_VIOLATIONS = 20
"""Violations reported per request; the first few are enough to fix a caller."""

_F = FieldDescriptor
_UNSIGNED_64 = frozenset({_F.TYPE_UINT64, _F.TYPE_FIXED64})
_FLOATING = frozenset({_F.TYPE_DOUBLE, _F.TYPE_FLOAT})


def map_value_field(field: FieldDescriptor) -> FieldDescriptor | None:
    """The value field of a map field's entries, or None if `field` is not a map."""
    entry = field.message_type
    if entry is None or not entry.GetOptions().map_entry:
        return None
    return entry.fields_by_name["value"]


def _scalar_violation(field: FieldDescriptor, value: Any) -> str | None:
    if field.type == _F.TYPE_ENUM:
        enum = field.enum_type
        if enum is not None and enum.values_by_number.get(value) is None:
            return f"unknown {enum.name} value {value}"
    elif field.type in _UNSIGNED_64:
        if value > MAX_INT64:
            return f"must be at most {MAX_INT64}, got {value}"
    elif field.type in _FLOATING and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    return None


def _values(field: FieldDescriptor, value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, item) for a singular field, each item of a repeated one, each value of a map."""
    if map_value_field(field) is not None:
        for key in value:
            yield f"{path}[{key!r}]", value[key]
    elif field.is_repeated:
        for i, item in enumerate(value):
            yield f"{path}[{i}]", item
    else:
        yield path, value


def field_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every set field anywhere in `message` that no handler can take as it is.

    Unknown enum values (proto3 keeps them as plain numbers, which would otherwise read as a
    default), 64-bit unsigned numbers beyond what the database stores, and NaN or infinite
    floating point numbers. At most MAX_VIOLATIONS are returned.
    """
    found: list[FieldViolation] = []
    _walk(message, prefix, found)
    return found[:MAX_VIOLATIONS]


def _walk(message: Message, prefix: str, found: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        if len(found) >= MAX_VIOLATIONS:
            return
        path = f"{prefix}{field.name}"
        element = map_value_field(field) or field
        for item_path, item in _values(field, value, path):
            if element.type == _F.TYPE_MESSAGE:
                _walk(item, f"{item_path}.", found)
                continue
            problem = _scalar_violation(element, item)
            if problem is not None:
                found.append(FieldViolation(item_path, problem))


class _Refused:
    """Stands for a request message that must not reach its handler, with the reason why."""

    def __init__(self, error: InvalidArgumentError) -> None:
        self.error = error


def checked_deserializer(
    deserializer: Callable[[bytes], Any] | None, *, check_values: bool
) -> Callable[[bytes], Any] | None:
    """`deserializer`, answering a `_Refused` instead of raising for bad bytes or values."""
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            message = deserializer(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            del exc  # the parser's text names byte offsets, of no use to the caller
            return _Refused(
                InvalidArgumentError("the request message is not a valid protobuf encoding")
            )
        if check_values and isinstance(message, Message):
            violations = field_violations(message)
            if violations:
                return _Refused(InvalidArgumentError("invalid request", violations))
        return message

    return parse


async def _refuse(refused: _Refused, context: grpc.aio.ServicerContext) -> None:
    await context.abort_with_status(error_to_status(refused.error))


def _checked_unary(behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Refused):
            await _refuse(request, context)
        return await behavior(request, context)

    return handler


def _checked_unary_stream(behavior: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, _Refused):
            await _refuse(request, context)
        async for item in behavior(request, context):
            yield item

    return handler


def _checked_requests(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    async def checked() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _Refused):
                await _refuse(request, context)
            yield request

    return checked()


def _checked_stream_stream(behavior: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in behavior(_checked_requests(requests, context), context):
            yield item

    return handler


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A request that does not decode, or holds values no handler takes, is the caller's error.

    Install it after the security pipeline (which decodes after authenticating) or, without
    one, first. Agent streams (`SiteService`) are only checked for decoding: an agent newer
    than the broker may send enum values this broker does not know yet.
    """

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
        method = handler_call_details.method
        return self._wrapped.get(
            method, handler, lambda: _lenient_handler(handler, not methods.is_site_method(method))
        )


def _lenient_handler(handler: grpc.RpcMethodHandler, check_values: bool) -> grpc.RpcMethodHandler:
    """The handler with a deserializer that lets refused requests reach the check."""
    parse = checked_deserializer(handler.request_deserializer, check_values=check_values)
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
