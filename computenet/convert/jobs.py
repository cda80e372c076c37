"""Jobs, their events and placement explanations on the wire, to and from domain objects."""

from __future__ import annotations

from computenet.convert.enums import state_from_proto, state_to_proto
from computenet.convert.spec import spec_from_proto, spec_to_proto
from computenet.types import (
    CandidateSite,
    Job,
    JobEvent,
    JobId,
    JobState,
    Placement,
    SiteId,
    TenantId,
)
from computenet.v1 import types_pb2 as pb

_WITH_EXIT_CODE = frozenset({JobState.SUCCEEDED, JobState.FAILED})
"""States whose exit code is meaningful; the wire's 0 means "none" in every other state."""


def job_to_proto(job: Job) -> pb.Job:
    """Domain job to wire job."""
    return pb.Job(
        job_id=job.job_id,
        tenant=job.tenant,
        spec=spec_to_proto(job.spec),
        state=state_to_proto(job.state),
        site=job.site or "",
        attempt=job.attempt,
        reason=job.reason,
        exit_code=job.exit_code or 0,
        last_sequence=job.last_sequence,
        created_unix_ms=job.created_unix_ms,
        updated_unix_ms=job.updated_unix_ms,
        request_id=job.request_id,
        cancel_requested=job.cancel_requested,
        migration_target=job.migration_target or "",
        pool=job.pool,
    )


def job_from_proto(msg: pb.Job) -> Job:
    """Wire job to domain job; a state this build does not know reads as pending."""
    state = state_from_proto(msg.state) or JobState.PENDING
    return Job(
        job_id=JobId(msg.job_id),
        tenant=TenantId(msg.tenant),
        spec=spec_from_proto(msg.spec, accepted=True),
        state=state,
        site=SiteId(msg.site) if msg.site else None,
        attempt=msg.attempt,
        reason=msg.reason,
        exit_code=msg.exit_code if state in _WITH_EXIT_CODE else None,
        last_sequence=msg.last_sequence,
        created_unix_ms=msg.created_unix_ms,
        updated_unix_ms=msg.updated_unix_ms,
        request_id=msg.request_id,
        cancel_requested=msg.cancel_requested,
        migration_target=SiteId(msg.migration_target) if msg.migration_target else None,
        pool=msg.pool,
    )


def event_to_proto(event: JobEvent) -> pb.JobEvent:
    """Domain event to wire event."""
    return pb.JobEvent(
        sequence=event.sequence,
        job_id=event.job_id,
        state=state_to_proto(event.state),
        site=event.site or "",
        attempt=event.attempt,
        cause=event.cause,
        message=event.message,
        time_unix_ms=event.time_unix_ms,
        exit_code=event.exit_code or 0,
    )


def event_from_proto(msg: pb.JobEvent) -> JobEvent:
    """Wire event to domain event; a state this build does not know reads as pending."""
    state = state_from_proto(msg.state) or JobState.PENDING
    return JobEvent(
        sequence=msg.sequence,
        job_id=JobId(msg.job_id),
        state=state,
        cause=msg.cause,
        time_unix_ms=msg.time_unix_ms,
        site=SiteId(msg.site) if msg.site else None,
        attempt=msg.attempt,
        message=msg.message,
        exit_code=msg.exit_code if state in _WITH_EXIT_CODE else None,
    )


def candidate_to_proto(candidate: CandidateSite) -> pb.CandidateSite:
    """Domain candidate site of a placement to the wire."""
    return pb.CandidateSite(
        site=candidate.site,
        feasible=candidate.feasible,
        reason=candidate.reason,
        terms_cny=dict(candidate.terms_cny),
        total_cny=candidate.total_cny,
        accelerator=candidate.accelerator,
        run_hours=candidate.run_hours,
    )


def candidate_from_proto(msg: pb.CandidateSite) -> CandidateSite:
    """Wire candidate site of a placement to the domain."""
    return CandidateSite(
        site=SiteId(msg.site),
        feasible=msg.feasible,
        reason=msg.reason,
        terms_cny=dict(msg.terms_cny),
        total_cny=msg.total_cny,
        accelerator=msg.accelerator,
        run_hours=msg.run_hours,
    )


def placement_to_proto(placement: Placement) -> pb.Placement:
    """Domain placement to wire placement."""
    return pb.Placement(
        chosen=placement.chosen or "",
        decision_ms=placement.decision_ms,
        candidates=[candidate_to_proto(c) for c in placement.candidates],
    )


def placement_from_proto(msg: pb.Placement) -> Placement:
    """Wire placement to domain placement."""
    return Placement(
        chosen=SiteId(msg.chosen) if msg.chosen else None,
        decision_ms=msg.decision_ms,
        candidates=tuple(candidate_from_proto(c) for c in msg.candidates),
    )
