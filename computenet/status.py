"""The one error catalog: typed errors to gRPC statuses with google.rpc details, and back."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from computenet.errors import (
    ERROR_DOMAIN,
    ERRORS_BY_REASON,
    ComputeNetError,
    DeadlineExceededError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    JobAlreadyExistsError,
    NotLeaderError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)

_C = grpc.StatusCode

STATUS_CODE_BY_REASON: Mapping[str, grpc.StatusCode] = MappingProxyType(
    {
        "INVALID_ARGUMENT": _C.INVALID_ARGUMENT,
        "INVALID_JOB_SPEC": _C.INVALID_ARGUMENT,
        "JOB_NOT_FOUND": _C.NOT_FOUND,
        "SITE_NOT_FOUND": _C.NOT_FOUND,
        "NOT_PLACED": _C.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED": _C.ALREADY_EXISTS,
        "JOB_FINAL": _C.FAILED_PRECONDITION,
        "PERMISSION_DENIED": _C.PERMISSION_DENIED,
        "UNAUTHENTICATED": _C.UNAUTHENTICATED,
        "RESOURCE_EXHAUSTED": _C.RESOURCE_EXHAUSTED,
        "UNAVAILABLE": _C.UNAVAILABLE,
        "NOT_LEADER": _C.UNAVAILABLE,
        "DEADLINE_EXCEEDED": _C.DEADLINE_EXCEEDED,
        "UNIMPLEMENTED": _C.UNIMPLEMENTED,
        "INTERNAL": _C.INTERNAL,
    }
)
"""Public status code of every error reason; reasons not listed here are INTERNAL."""

# Only codes that name exactly one error class; ambiguous ones (NOT_FOUND, FAILED_PRECONDITION)
# without an ErrorInfo become the base class so nobody catches a guessed subtype.
_CLASS_BY_CODE: Mapping[grpc.StatusCode, type[ComputeNetError]] = MappingProxyType(
    {
        _C.INVALID_ARGUMENT: InvalidArgumentError,
        _C.ALREADY_EXISTS: JobAlreadyExistsError,
        _C.PERMISSION_DENIED: PermissionDeniedError,
        _C.UNAUTHENTICATED: UnauthenticatedError,
        _C.RESOURCE_EXHAUSTED: ResourceExhaustedError,
        _C.UNAVAILABLE: UnavailableError,
        _C.DEADLINE_EXCEEDED: DeadlineExceededError,
        _C.UNIMPLEMENTED: UnimplementedError,
        _C.INTERNAL: InternalError,
        _C.DATA_LOSS: InternalError,
    }
)

# Details travel in trailing metadata, which peers cap (8 KiB by default), so bound them.
MAX_MESSAGE_CHARS = 1000
MAX_DESCRIPTION_CHARS = 200
MAX_BAD_REQUEST_BYTES = 4096


def status_code_for(exc: ComputeNetError) -> grpc.StatusCode:
    """The public gRPC status code of a typed error."""
    return STATUS_CODE_BY_REASON.get(exc.reason, _C.INTERNAL)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bad_request(violations: list[FieldViolation]) -> error_details_pb2.BadRequest:
    """Violations in order, as many as fit the byte budget (the first always does)."""
    bad = error_details_pb2.BadRequest()
    for v in violations:
        item = bad.field_violations.add(
            field=_truncate(v.field, MAX_DESCRIPTION_CHARS),
            description=_truncate(v.description, MAX_DESCRIPTION_CHARS),
        )
        if bad.ByteSize() > MAX_BAD_REQUEST_BYTES and len(bad.field_violations) > 1:
            bad.field_violations.remove(item)
            break
    return bad


def error_to_rich_status(exc: ComputeNetError) -> status_pb2.Status:
    """The google.rpc.Status of a typed error: ErrorInfo, plus BadRequest and RetryInfo if any."""
    code = status_code_for(exc)
    rich = status_pb2.Status(code=code.value[0], message=_truncate(exc.message, MAX_MESSAGE_CHARS))
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN)
    if isinstance(exc, NotLeaderError):
        info.metadata["leader_address"] = _truncate(exc.leader_address, MAX_DESCRIPTION_CHARS)
        info.metadata["leader_agent_address"] = _truncate(
            exc.leader_agent_address, MAX_DESCRIPTION_CHARS
        )
    rich.details.add().Pack(info)
    if isinstance(exc, InvalidArgumentError) and exc.violations:
        rich.details.add().Pack(_bad_request(exc.violations))
    if isinstance(exc, ResourceExhaustedError | UnavailableError) and exc.retry_after_s > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(exc.retry_after_s * 1e9))
        rich.details.add().Pack(retry)
    return rich


def error_to_status(exc: ComputeNetError) -> grpc.Status:
    """The grpc.Status to abort an RPC with for a typed error."""
    status: grpc.Status = rpc_status.to_status(error_to_rich_status(exc))
    return status


def _unpack_details(
    rich: status_pb2.Status,
) -> tuple[str | None, list[FieldViolation], float, dict[str, str]]:
    reason: str | None = None
    violations: list[FieldViolation] = []
    retry_after_s = 0.0
    metadata: dict[str, str] = {}
    for any_msg in rich.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        retry = error_details_pb2.RetryInfo()
        if any_msg.Unpack(info):
            if info.domain == ERROR_DOMAIN:
                reason = info.reason
                metadata = dict(info.metadata)
        elif any_msg.Unpack(bad):
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif any_msg.Unpack(retry):
            retry_after_s = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, violations, retry_after_s, metadata


def error_from_status(
    code: grpc.StatusCode, message: str, rich: status_pb2.Status | None = None
) -> ComputeNetError:
    """The typed error for a status: by ErrorInfo reason, else by status code."""
    reason, violations, retry_after_s, metadata = (
        _unpack_details(rich) if rich else (None, [], 0.0, {})
    )
    cls = ERRORS_BY_REASON.get(reason or "") or _CLASS_BY_CODE.get(code, ComputeNetError)
    status_code = code.name
    if issubclass(cls, NotLeaderError):
        return cls(
            message,
            retry_after_s,
            leader_address=metadata.get("leader_address", ""),
            leader_agent_address=metadata.get("leader_agent_address", ""),
            status_code=status_code,
        )
    if issubclass(cls, InvalidArgumentError):
        return cls(message, violations, status_code=status_code)
    if issubclass(cls, ResourceExhaustedError | UnavailableError):
        return cls(message, retry_after_s, status_code=status_code)
    return cls(message, status_code=status_code)


def error_from_rpc_error(err: grpc.RpcError) -> ComputeNetError:
    """The typed error for a failed call (sync or grpc.aio); the raw code is on `status_code`."""
    # Failed calls of both stacks (grpc.Call errors, grpc.aio.AioRpcError) answer these
    # synchronously; a bare RpcError without them is a transport failure of unknown kind.
    if not (hasattr(err, "code") and hasattr(err, "details")):
        return error_from_status(_C.UNKNOWN, str(err) or type(err).__name__)
    try:
        rich = rpc_status.from_call(err)
    except ValueError:
        # A status proto that disagrees with the call's own status is not trusted.
        rich = None
    return error_from_status(err.code() or _C.UNKNOWN, err.details() or "", rich)
