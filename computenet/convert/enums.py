"""Wire enums to and from domain enums; UNSPECIFIED and unknown values read as None."""

from __future__ import annotations

from computenet.rebalance_types import MoveKind
from computenet.types import JobKind, JobState, SiteLossPolicy, SiteStatus
from computenet.v1 import rebalance_service_pb2 as rebalance_pb
from computenet.v1 import types_pb2 as pb

_KIND_TO_PB = {k: pb.JobKind.Value(f"JOB_KIND_{k.name}") for k in JobKind}
_KIND_FROM_PB = {int(v): k for k, v in _KIND_TO_PB.items()}
_STATE_TO_PB = {s: pb.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState}
_STATE_FROM_PB = {int(v): k for k, v in _STATE_TO_PB.items()}
_STATUS_TO_PB = {s: pb.SiteStatus.Value(f"SITE_STATUS_{s.name}") for s in SiteStatus}
_STATUS_FROM_PB = {int(v): k for k, v in _STATUS_TO_PB.items()}
_LOSS_TO_PB = {p: pb.SiteLossPolicy.Value(f"SITE_LOSS_POLICY_{p.name}") for p in SiteLossPolicy}
_LOSS_FROM_PB = {int(v): k for k, v in _LOSS_TO_PB.items()}
_MOVE_TO_PB = {m: rebalance_pb.MoveKind.Value(f"MOVE_KIND_{m.name}") for m in MoveKind}
_MOVE_FROM_PB = {int(v): k for k, v in _MOVE_TO_PB.items()}


def kind_to_proto(kind: JobKind | str) -> pb.JobKind.ValueType:
    """Domain kind to the wire enum."""
    return _KIND_TO_PB[JobKind(kind)]


def kind_from_proto(value: int) -> JobKind | None:
    """Wire enum to domain kind; None for UNSPECIFIED or unknown values."""
    return _KIND_FROM_PB.get(value)


def state_to_proto(state: JobState) -> pb.JobState.ValueType:
    """Domain state to the wire enum."""
    return _STATE_TO_PB[state]


def state_from_proto(value: int) -> JobState | None:
    """Wire enum to domain state; None for UNSPECIFIED or unknown values."""
    return _STATE_FROM_PB.get(value)


def site_status_to_proto(status: SiteStatus) -> pb.SiteStatus.ValueType:
    """Domain site status to the wire enum."""
    return _STATUS_TO_PB[status]


def site_status_from_proto(value: int) -> SiteStatus | None:
    """Wire enum to domain site status; None for UNSPECIFIED or unknown values."""
    return _STATUS_FROM_PB.get(value)


def site_loss_policy_to_proto(policy: SiteLossPolicy | str) -> pb.SiteLossPolicy.ValueType:
    """Domain site-loss policy to the wire enum."""
    return _LOSS_TO_PB[SiteLossPolicy(policy)]


def site_loss_policy_from_proto(value: int) -> SiteLossPolicy | None:
    """Wire enum to domain site-loss policy; None for UNSPECIFIED or unknown values."""
    return _LOSS_FROM_PB.get(value)


def move_kind_to_proto(kind: MoveKind) -> rebalance_pb.MoveKind.ValueType:
    """Domain move kind to the wire enum."""
    return _MOVE_TO_PB[kind]


def move_kind_from_proto(value: int) -> MoveKind | None:
    """Wire enum to domain move kind; None for UNSPECIFIED or unknown values."""
    return _MOVE_FROM_PB.get(value)
