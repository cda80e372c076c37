"""Typed errors of the ComputeNet API, their public reasons, and the field violations they carry."""

from __future__ import annotations

from dataclasses import dataclass

ERROR_DOMAIN = "computenet.io"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One problem with one field of a request, e.g. `spec.resources.count`."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class ComputeNetError(Exception):
    """Base of every error the SDK raises; `reason` is the stable machine-readable code."""

    reason = "UNKNOWN"

    def __init__(self, message: str, *, status_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class InvalidArgumentError(ComputeNetError, ValueError):
    """The request is malformed; `violations` names every bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: list[FieldViolation] | None = None,
        *,
        status_code: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.violations = list(violations or [])

    def __str__(self) -> str:
        if not self.violations:
            return self.message
        return self.message + ": " + "; ".join(str(v) for v in self.violations)


class SpecError(InvalidArgumentError):
    """A job spec is invalid."""

    reason = "INVALID_JOB_SPEC"


class JobNotFoundError(ComputeNetError, LookupError):
    """No such job (or not visible to the caller)."""

    reason = "JOB_NOT_FOUND"


class SiteNotFoundError(ComputeNetError, LookupError):
    """No such site in the broker's topology."""

    reason = "SITE_NOT_FOUND"


class JobAlreadyExistsError(ComputeNetError):
    """The request id was used before with a different spec."""

    reason = "REQUEST_ID_REUSED"


class JobNotCancellableError(ComputeNetError):
    """The job is already in a final state."""

    reason = "JOB_FINAL"


class NotPlacedError(ComputeNetError, LookupError):
    """The job has no placement decision to explain yet."""

    reason = "NOT_PLACED"


class PermissionDeniedError(ComputeNetError, PermissionError):
    """The caller may not do this."""

    reason = "PERMISSION_DENIED"


class UnauthenticatedError(ComputeNetError, PermissionError):
    """The caller did not prove who it is."""

    reason = "UNAUTHENTICATED"


class ResourceExhaustedError(ComputeNetError):
    """A limit was hit; retry after `retry_after_s`."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self, message: str, retry_after_s: float = 0.0, *, status_code: str | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s


class UnavailableError(ComputeNetError, ConnectionError):
    """The broker cannot be reached, is shutting down, or cannot reach its database; retry
    after `retry_after_s` (0.0: no hint)."""

    reason = "UNAVAILABLE"

    def __init__(
        self, message: str, retry_after_s: float = 0.0, *, status_code: str | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s


class NotLeaderError(UnavailableError):
    """This broker replica does not lead; `leader_address` (clients) and
    `leader_agent_address` (agents) say where the leader is ("" when none is known)."""

    reason = "NOT_LEADER"

    def __init__(
        self,
        message: str,
        retry_after_s: float = 0.0,
        *,
        leader_address: str = "",
        leader_agent_address: str = "",
        status_code: str | None = None,
    ) -> None:
        super().__init__(message, retry_after_s, status_code=status_code)
        self.leader_address = leader_address
        self.leader_agent_address = leader_agent_address


class DeadlineExceededError(ComputeNetError, TimeoutError):
    """The call did not finish within its deadline."""

    reason = "DEADLINE_EXCEEDED"


class InternalError(ComputeNetError):
    """The broker failed unexpectedly; details are in its log."""

    reason = "INTERNAL"


class UnimplementedError(ComputeNetError, NotImplementedError):
    """The broker does not serve this call yet."""

    reason = "UNIMPLEMENTED"


ERRORS_BY_REASON: dict[str, type[ComputeNetError]] = {
    cls.reason: cls
    for cls in (
        InvalidArgumentError,
        SpecError,
        JobNotFoundError,
        SiteNotFoundError,
        JobAlreadyExistsError,
        JobNotCancellableError,
        NotPlacedError,
        PermissionDeniedError,
        UnauthenticatedError,
        ResourceExhaustedError,
        UnavailableError,
        NotLeaderError,
        DeadlineExceededError,
        InternalError,
        UnimplementedError,
    )
}
