"""The error catalog maps every typed error to its status and back without losing details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from computenet.errors import (
    ERROR_DOMAIN,
    ERRORS_BY_REASON,
    ComputeNetError,
    FieldViolation,
    InvalidArgumentError,
    JobNotFoundError,
    NotLeaderError,
    ResourceExhaustedError,
    SpecError,
    UnavailableError,
)
from computenet.status import (
    STATUS_CODE_BY_REASON,
    error_from_rpc_error,
    error_from_status,
    error_to_rich_status,
    error_to_status,
)


@dataclass
class FailedCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A failed call as a client sees it, built from the status a server aborted with."""

    status: grpc.Status

    def code(self) -> grpc.StatusCode:
        return self.status.code

    def details(self) -> str:
        return self.status.details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self.status.trailing_metadata)

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


def _round_trip(exc: ComputeNetError) -> ComputeNetError:
    return error_from_rpc_error(FailedCall(error_to_status(exc)))


def _example(cls: type[ComputeNetError]) -> ComputeNetError:
    if issubclass(cls, InvalidArgumentError):
        return cls("bad spec", [FieldViolation("spec.name", "too long"), FieldViolation("x", "y")])
    if issubclass(cls, ResourceExhaustedError):
        return cls("too many submissions", 2.5)
    return cls(f"{cls.__name__} happened")


EXPECTED_CODES = {
    "INVALID_ARGUMENT": "INVALID_ARGUMENT",
    "INVALID_JOB_SPEC": "INVALID_ARGUMENT",
    "JOB_NOT_FOUND": "NOT_FOUND",
    "SITE_NOT_FOUND": "NOT_FOUND",
    "NOT_PLACED": "FAILED_PRECONDITION",
    "REQUEST_ID_REUSED": "ALREADY_EXISTS",
    "JOB_FINAL": "FAILED_PRECONDITION",
    "PERMISSION_DENIED": "PERMISSION_DENIED",
    "UNAUTHENTICATED": "UNAUTHENTICATED",
    "RESOURCE_EXHAUSTED": "RESOURCE_EXHAUSTED",
    "UNAVAILABLE": "UNAVAILABLE",
    "NOT_LEADER": "UNAVAILABLE",
    "DEADLINE_EXCEEDED": "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED": "UNIMPLEMENTED",
    "INTERNAL": "INTERNAL",
}


def test_catalog_covers_every_reason_with_the_documented_code() -> None:
    assert set(STATUS_CODE_BY_REASON) == set(ERRORS_BY_REASON) == set(EXPECTED_CODES)
    assert {r: c.name for r, c in STATUS_CODE_BY_REASON.items()} == EXPECTED_CODES


@pytest.mark.parametrize("cls", list(ERRORS_BY_REASON.values()), ids=lambda c: c.__name__)
def test_every_error_class_round_trips(cls: type[ComputeNetError]) -> None:
    original = _example(cls)
    back = _round_trip(original)
    assert type(back) is cls
    assert back.message == original.message
    assert str(back) == str(original)
    assert back.status_code == EXPECTED_CODES[cls.reason]
    if isinstance(original, InvalidArgumentError):
        assert isinstance(back, InvalidArgumentError)
        assert back.violations == original.violations
    if isinstance(original, ResourceExhaustedError):
        assert isinstance(back, ResourceExhaustedError)
        assert back.retry_after_s == pytest.approx(2.5)


def test_status_carries_error_info_bad_request_and_retry_info() -> None:
    rich = error_to_rich_status(SpecError("bad", [FieldViolation("spec.kind", "unknown")]))
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(info) and info.reason == "INVALID_JOB_SPEC"
    assert info.domain == ERROR_DOMAIN
    assert rich.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("spec.kind", "unknown")]
    retry = error_details_pb2.RetryInfo()
    assert error_to_rich_status(ResourceExhaustedError("slow", 0.25)).details[1].Unpack(retry)
    assert retry.retry_delay.ToMilliseconds() == 250


def test_typed_lookups_stay_lookup_errors() -> None:
    back = _round_trip(JobNotFoundError("job j-1 not found"))
    assert isinstance(back, LookupError) and isinstance(back, JobNotFoundError)


def test_without_error_info_the_status_code_decides() -> None:
    plain = error_from_status(grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert type(plain) is UnavailableError and plain.status_code == "UNAVAILABLE"
    ambiguous = error_from_status(grpc.StatusCode.NOT_FOUND, "gone")
    assert type(ambiguous) is ComputeNetError and ambiguous.status_code == "NOT_FOUND"


def test_reasons_of_other_domains_are_ignored() -> None:
    rich = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="m")
    rich.details.add().Pack(error_details_pb2.ErrorInfo(reason="JOB_NOT_FOUND", domain="other.io"))
    back = error_from_rpc_error(FailedCall(rpc_status.to_status(rich)))
    assert type(back) is ComputeNetError


def test_large_violation_lists_are_bounded() -> None:
    many = [FieldViolation(f"spec.labels.k{i}", "x" * 500) for i in range(500)]
    status = error_to_status(InvalidArgumentError("bad", many))
    assert sum(len(v) for _, v in status.trailing_metadata) < 6 * 1024
    back = _round_trip(InvalidArgumentError("bad", many))
    assert isinstance(back, InvalidArgumentError)
    assert back.violations[0].field == "spec.labels.k0" and 1 < len(back.violations) < 50


def test_not_leader_carries_the_leader_addresses_across_the_wire() -> None:
    original = NotLeaderError(
        "this replica follows",
        0.25,
        leader_address="10.0.0.7:50051",
        leader_agent_address="10.0.0.7:50052",
    )
    back = _round_trip(original)
    assert isinstance(back, NotLeaderError)
    assert isinstance(back, UnavailableError)  # callers that only know UNAVAILABLE still retry
    assert (back.leader_address, back.leader_agent_address) == ("10.0.0.7:50051", "10.0.0.7:50052")
    assert back.retry_after_s == 0.25
