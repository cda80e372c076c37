"""ComputeNet SDK: submit, watch, explain and cancel jobs on the federation through its broker."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from computenet.errors import (
    ComputeNetError,
    DeadlineExceededError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    JobAlreadyExistsError,
    JobNotCancellableError,
    JobNotFoundError,
    NotLeaderError,
    NotPlacedError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SiteNotFoundError,
    SpecError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from computenet.spec import JobSpec, load_spec, parse_spec
from computenet.types import (
    CandidateSite,
    ClusterLeader,
    ClusterReplica,
    ClusterStatus,
    Job,
    JobEvent,
    JobKind,
    JobState,
    Placement,
    PoolCapacity,
    SiteInfo,
    SiteStatus,
)

if TYPE_CHECKING:
    from computenet.client import AsyncClient, Client, JobPage, RetryPolicy, SubmitResult

# The clients pull in grpc and the generated stubs; load them on first use so that
# `import computenet` (specs, types, errors) stays light.
_LAZY = frozenset({"AsyncClient", "Client", "JobPage", "RetryPolicy", "SubmitResult"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("computenet.client"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'computenet' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "CandidateSite",
    "Client",
    "ClusterLeader",
    "ClusterReplica",
    "ClusterStatus",
    "ComputeNetError",
    "DeadlineExceededError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "Job",
    "JobAlreadyExistsError",
    "JobEvent",
    "JobKind",
    "JobNotCancellableError",
    "JobNotFoundError",
    "JobPage",
    "JobSpec",
    "JobState",
    "NotLeaderError",
    "NotPlacedError",
    "PermissionDeniedError",
    "Placement",
    "PoolCapacity",
    "ResourceExhaustedError",
    "RetryPolicy",
    "SiteInfo",
    "SiteNotFoundError",
    "SiteStatus",
    "SpecError",
    "SubmitResult",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "load_spec",
    "parse_spec",
]
