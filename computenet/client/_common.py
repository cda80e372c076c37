"""What the sync and async clients share: options, results, request building and error mapping."""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from computenet.convert import (
    grouping_to_proto,
    kind_to_proto,
    site_status_to_proto,
    spec_to_proto,
    state_to_proto,
)
from computenet.errors import (
    ComputeNetError,
    DeadlineExceededError,
    FieldViolation,
    InvalidArgumentError,
    SpecError,
    UnavailableError,
)
from computenet.spec import JobSpec, checked_spec, parse_spec
from computenet.status import error_from_rpc_error
from computenet.types import Job, JobKind, JobState, SiteStatus
from computenet.usage import UsageGrouping
from computenet.v1 import accounting_service_pb2 as accounting_pb
from computenet.v1 import accounting_service_pb2_grpc as accounting_grpc
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2_grpc as rebalance_grpc

DEFAULT_BROKER = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded, jittered exponential backoff for calls that are safe to repeat.

    With several broker addresses a failed attempt moves to the next address at once; the
    policy's waits and bounds apply to rounds, a round ending when every address has failed.
    """

    max_attempts: int = 5
    """Rounds in total, the first included (consecutive failed rounds, for streams); with one
    address a round is one attempt."""
    initial_backoff_s: float = 0.1
    """Wait after the first failed round."""
    max_backoff_s: float = 2.0
    """Upper bound of any single wait."""
    multiplier: float = 2.0
    """Growth of the wait per round."""
    max_rate_limit_wait_s: float = 5.0
    """The longest wait a broker's rate-limit hint (RetryInfo) is honoured for; a call told to
    wait longer fails at once with the hint in `ResourceExhaustedError.retry_after_s`."""

    def backoff_s(self, failures: int) -> float:
        """Wait after `failures` consecutive failures (>= 1), jittered within its upper half."""
        ceiling = min(
            self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (failures - 1)
        )
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Outcome of a submission."""

    job: Job
    """The accepted job, or the one accepted earlier under the same request id."""
    duplicate: bool
    """True if the request id was already known and the earlier job is returned."""


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job listing."""

    jobs: list[Job] = field(default_factory=list)
    """Jobs of this page, oldest first."""
    next_page_token: str = ""
    """Token for the next page; empty on the last page."""


@dataclass(frozen=True, slots=True)
class Stubs:
    """The service stubs of one channel (sync or grpc.aio: the generated stubs serve both)."""

    jobs: job_grpc.JobServiceStub
    federation: fed_grpc.FederationServiceStub
    rebalance: rebalance_grpc.RebalanceServiceStub
    accounting: accounting_grpc.AccountingServiceStub

    @classmethod
    def of(cls, channel: Any) -> Stubs:
        """Stubs over `channel`."""
        return cls(
            job_grpc.JobServiceStub(channel),
            fed_grpc.FederationServiceStub(channel),
            rebalance_grpc.RebalanceServiceStub(channel),
            accounting_grpc.AccountingServiceStub(channel),
        )


def _day(value: datetime.date | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime.date) else value


def usage_request(
    tenant: str | None,
    since: datetime.date | str | None,
    until: datetime.date | str | None,
    by: UsageGrouping | str,
) -> accounting_pb.GetUsageRequest:
    """The GetUsage request of `usage(...)`; raises InvalidArgumentError for an unknown `by`."""
    try:
        grouping = UsageGrouping(by)
    except ValueError:
        choices = ", ".join(g.value for g in UsageGrouping)
        raise InvalidArgumentError(
            "invalid usage request", [FieldViolation("by", f"must be one of {choices}")]
        ) from None
    return accounting_pb.GetUsageRequest(
        tenant=tenant or "",
        since_day=_day(since),
        until_day=_day(until),
        by=grouping_to_proto(grouping),
    )


def channel_options() -> list[tuple[str, Any]]:
    """Options of every client channel."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 60_000),
    ]


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata sent with every call: the bearer token, if any."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def new_request_id() -> str:
    """A fresh idempotency key for a submission."""
    return str(uuid.uuid4())


def coerce_spec(spec: JobSpec | Mapping[str, Any]) -> JobSpec:
    """A validated JobSpec from a JobSpec or a plain mapping; raises SpecError before any call.

    A JobSpec is checked again: one built with `model_construct` or changed with
    `model_copy(update=...)` was never validated, and the broker would refuse it anyway.
    """
    if isinstance(spec, JobSpec):
        return checked_spec(spec)
    if not isinstance(spec, Mapping):
        raise SpecError(
            "spec: a job spec must be a JobSpec or a mapping",
            [FieldViolation("spec", f"expected a mapping, got {type(spec).__name__}")],
        )
    return parse_spec(dict(spec))


def submit_request(spec: JobSpec | Mapping[str, Any], request_id: str) -> job_pb.SubmitJobRequest:
    """The SubmitJob request for a spec under an idempotency key."""
    return job_pb.SubmitJobRequest(spec=spec_to_proto(coerce_spec(spec)), request_id=request_id)


def _enum_filter(name: str, value: Any, cls: Any, to_proto: Any) -> Any:
    # Any: the generated enum fields want their own ValueType, which plain ints are at runtime.
    if value is None or value == "":
        return 0
    try:
        return int(to_proto(cls(value)))
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        detail = f"unknown {name} {value!r}; expected one of {allowed}"
        raise InvalidArgumentError(detail, [FieldViolation(name, detail)]) from None


def list_request(
    *,
    state: JobState | str | None,
    kind: JobKind | str | None,
    site: str | None,
    tenant: str | None,
    page_size: int,
    page_token: str,
) -> job_pb.ListJobsRequest:
    """The ListJobs request for a set of filters."""
    return job_pb.ListJobsRequest(
        state=_enum_filter("state", state, JobState, state_to_proto),
        kind=_enum_filter("kind", kind, JobKind, kind_to_proto),
        site=site or "",
        tenant=tenant or "",
        page_size=page_size,
        page_token=page_token,
    )


def watch_jobs_request(
    *, after_sequence: int, tenant: str | None, kind: JobKind | str | None
) -> job_pb.WatchJobsRequest:
    """The WatchJobs request for a set of filters."""
    return job_pb.WatchJobsRequest(
        after_sequence=after_sequence,
        tenant=tenant or "",
        kind=_enum_filter("kind", kind, JobKind, kind_to_proto),
    )


def list_sites_request(status: SiteStatus | str | None) -> fed_pb.ListSitesRequest:
    """The ListSites request for a status filter."""
    return fed_pb.ListSitesRequest(
        status=_enum_filter("status", status, SiteStatus, site_status_to_proto)
    )


def translate(err: grpc.RpcError, target: str, timeout_s: float | None) -> ComputeNetError:
    """The typed error for a failed call, with a plain message for transport failures."""
    exc = error_from_rpc_error(err)
    from_broker = bool(getattr(err, "trailing_metadata", lambda: None)())
    if isinstance(exc, UnavailableError) and not from_broker:
        return UnavailableError(
            f"cannot reach broker at {target} (UNAVAILABLE)", status_code=exc.status_code
        )
    if isinstance(exc, DeadlineExceededError) and not from_broker and timeout_s is not None:
        return DeadlineExceededError(
            f"broker at {target} did not answer within {timeout_s:g} s (DEADLINE_EXCEEDED)",
            status_code=exc.status_code,
        )
    return exc


def checked_move_budget(value: int) -> int:
    """A validated move budget (0: the broker's configured budget)."""
    if value < 0:
        raise InvalidArgumentError(
            "move budget must be >= 0", [FieldViolation("move_budget", "must be >= 0")]
        )
    return value
