"""Conversion between wire messages (computenet.v1) and domain objects, in symmetric pairs."""

from __future__ import annotations

from typing import Any

from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo, RebalanceRunPage
from computenet.spec import JobSpec, parse_spec
from computenet.types import (
    CandidateSite,
    Job,
    JobEvent,
    JobId,
    JobKind,
    JobState,
    Placement,
    PoolCapacity,
    SiteId,
    SiteInfo,
    SiteStatus,
    TenantId,
)
from computenet.v1 import rebalance_service_pb2 as rebalance_pb
from computenet.v1 import types_pb2 as pb

_KIND_TO_PB = {
    JobKind.TRAINING: pb.JOB_KIND_TRAINING,
    JobKind.INFERENCE: pb.JOB_KIND_INFERENCE,
    JobKind.BATCH: pb.JOB_KIND_BATCH,
}
_KIND_FROM_PB = {v: k for k, v in _KIND_TO_PB.items()}
_STATE_TO_PB = {s: pb.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}
_STATUS_TO_PB = {s: pb.SiteStatus.Value(f"SITE_STATUS_{s.name}") for s in SiteStatus}
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}
_LOSS_TO_PB = {"requeue": pb.SITE_LOSS_POLICY_REQUEUE, "fail": pb.SITE_LOSS_POLICY_FAIL}
_LOSS_FROM_PB = {v: k for k, v in _LOSS_TO_PB.items()}


def kind_to_proto(kind: JobKind | str) -> pb.JobKind.ValueType:
    """Domain kind to the wire enum."""
    return _KIND_TO_PB[JobKind(kind)]


def kind_from_proto(value: int) -> JobKind | None:
    """Wire enum to domain kind; None for UNSPECIFIED or unknown values."""
    return _KIND_FROM_PB.get(value)  # type: ignore[call-overload]


def state_to_proto(state: JobState) -> pb.JobState.ValueType:
    """Domain state to the wire enum."""
    return _STATE_TO_PB[state]


def state_from_proto(value: int) -> JobState | None:
    """Wire enum to domain state; None for UNSPECIFIED or unknown values."""
    return _STATE_FROM_PB.get(value)  # type: ignore[call-overload]


def site_status_to_proto(status: SiteStatus) -> pb.SiteStatus.ValueType:
    """Domain site status to the wire enum."""
    return _STATUS_TO_PB[status]


def site_status_from_proto(value: int) -> SiteStatus | None:
    """Wire enum to domain site status; None for UNSPECIFIED."""
    return _STATUS_FROM_PB.get(value)  # type: ignore[call-overload]


def spec_to_proto(spec: JobSpec) -> pb.JobSpec:
    """Domain spec to wire spec."""
    msg = pb.JobSpec(
        name=spec.name,
        kind=kind_to_proto(spec.kind),
        resources=pb.Resources(
            accelerator=spec.resources.accelerator,
            count=spec.resources.count,
            cpu_cores=spec.resources.cpu_cores,
            memory_gb=spec.resources.memory_gb,
        ),
        gang=spec.gang,
        duration_hours=spec.duration_hours,
        priority=spec.priority,
        command=list(spec.command),
        labels=dict(spec.labels),
        on_site_loss=_LOSS_TO_PB[spec.on_site_loss],
        constraints=pb.Constraints(
            allowed_provinces=list(spec.constraints.allowed_provinces),
            allowed_sites=list(spec.constraints.allowed_sites),
            excluded_sites=list(spec.constraints.excluded_sites),
        ),
    )
    if spec.dataset is not None:
        msg.dataset.CopyFrom(pb.Dataset(origin=spec.dataset.origin, size_gb=spec.dataset.size_gb))
    if spec.checkpoint is not None:
        msg.checkpoint.CopyFrom(
            pb.Checkpoint(
                interval_hours=spec.checkpoint.interval_hours, size_gb=spec.checkpoint.size_gb
            )
        )
    if spec.inference is not None:
        msg.inference.CopyFrom(
            pb.InferenceSpec(
                user_regions=[
                    pb.RegionDemand(region=r.region, weight=r.weight)
                    for r in spec.inference.user_regions
                ],
                latency_slo_ms=spec.inference.latency_slo_ms,
                replicas=spec.inference.replicas,
            )
        )
    return msg


def spec_dict_from_proto(msg: pb.JobSpec) -> dict[str, Any]:
    """Wire spec to the plain mapping the spec schema validates (no validation here)."""
    kind = kind_from_proto(msg.kind)
    data: dict[str, Any] = {
        "name": msg.name,
        "kind": kind.value if kind else f"<unspecified:{msg.kind}>",
        "resources": {
            "accelerator": msg.resources.accelerator,
            "count": msg.resources.count,
            "cpu_cores": msg.resources.cpu_cores or 1.0,
            "memory_gb": msg.resources.memory_gb or 4.0,
        },
        "gang": msg.gang,
        "duration_hours": msg.duration_hours,
        "priority": msg.priority,
        "command": list(msg.command),
        "labels": dict(msg.labels),
        "on_site_loss": _LOSS_FROM_PB.get(msg.on_site_loss, "requeue"),  # type: ignore[call-overload]
        "constraints": {
            "allowed_provinces": list(msg.constraints.allowed_provinces),
            "allowed_sites": list(msg.constraints.allowed_sites),
            "excluded_sites": list(msg.constraints.excluded_sites),
        },
    }
    if msg.HasField("dataset"):
        data["dataset"] = {"origin": msg.dataset.origin, "size_gb": msg.dataset.size_gb}
    if msg.HasField("checkpoint"):
        data["checkpoint"] = {
            "interval_hours": msg.checkpoint.interval_hours,
            "size_gb": msg.checkpoint.size_gb,
        }
    if msg.HasField("inference"):
        data["inference"] = {
            "user_regions": [
                {"region": r.region, "weight": r.weight} for r in msg.inference.user_regions
            ],
            "latency_slo_ms": msg.inference.latency_slo_ms,
            "replicas": msg.inference.replicas or 1,
        }
    return data


def spec_from_proto(msg: pb.JobSpec) -> JobSpec:
    """Wire spec to domain spec; raises SpecError with a violation per bad field."""
    return parse_spec(spec_dict_from_proto(msg))


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
    )


def job_from_proto(msg: pb.Job) -> Job:
    """Wire job to domain job."""
    state = state_from_proto(msg.state) or JobState.PENDING
    final = state in (JobState.SUCCEEDED, JobState.FAILED)
    return Job(
        job_id=JobId(msg.job_id),
        tenant=TenantId(msg.tenant),
        spec=spec_from_proto(msg.spec),
        state=state,
        site=SiteId(msg.site) if msg.site else None,
        attempt=msg.attempt,
        reason=msg.reason,
        exit_code=msg.exit_code if final else None,
        last_sequence=msg.last_sequence,
        created_unix_ms=msg.created_unix_ms,
        updated_unix_ms=msg.updated_unix_ms,
        request_id=msg.request_id,
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
    """Wire event to domain event."""
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
        exit_code=msg.exit_code if state in (JobState.SUCCEEDED, JobState.FAILED) else None,
    )


def pool_to_proto(pool: PoolCapacity) -> pb.PoolCapacity:
    """Domain pool to wire pool."""
    return pb.PoolCapacity(
        model=pool.model, total=pool.total, allocatable=pool.allocatable, in_use=pool.in_use
    )


def pool_from_proto(msg: pb.PoolCapacity) -> PoolCapacity:
    """Wire pool to domain pool."""
    return PoolCapacity(
        model=msg.model, total=msg.total, allocatable=msg.allocatable, in_use=msg.in_use
    )


def site_to_proto(site: SiteInfo) -> pb.Site:
    """Domain site to wire site."""
    return pb.Site(
        site_id=site.site_id,
        name=site.name,
        province=site.province,
        side=site.side,
        status=site_status_to_proto(site.status),
        pools=[pool_to_proto(p) for p in site.pools],
        cpu_cores=site.cpu_cores,
        memory_gb=site.memory_gb,
        last_report_unix_ms=site.last_report_unix_ms,
        running_jobs=site.running_jobs,
        executor=site.executor,
        agent_version=site.agent_version,
    )


def site_from_proto(msg: pb.Site) -> SiteInfo:
    """Wire site to domain site."""
    return SiteInfo(
        site_id=SiteId(msg.site_id),
        name=msg.name,
        province=msg.province,
        side=msg.side,
        status=site_status_from_proto(msg.status) or SiteStatus.OFFLINE,
        pools=tuple(pool_from_proto(p) for p in msg.pools),
        cpu_cores=msg.cpu_cores,
        memory_gb=msg.memory_gb,
        last_report_unix_ms=msg.last_report_unix_ms,
        running_jobs=msg.running_jobs,
        executor=msg.executor,
        agent_version=msg.agent_version,
    )


def placement_to_proto(placement: Placement) -> pb.Placement:
    """Domain placement to wire placement."""
    return pb.Placement(
        chosen=placement.chosen or "",
        decision_ms=placement.decision_ms,
        candidates=[
            pb.CandidateSite(
                site=c.site,
                feasible=c.feasible,
                reason=c.reason,
                terms_cny=dict(c.terms_cny),
                total_cny=c.total_cny,
            )
            for c in placement.candidates
        ],
    )


def placement_from_proto(msg: pb.Placement) -> Placement:
    """Wire placement to domain placement."""
    return Placement(
        chosen=SiteId(msg.chosen) if msg.chosen else None,
        decision_ms=msg.decision_ms,
        candidates=tuple(
            CandidateSite(
                site=SiteId(c.site),
                feasible=c.feasible,
                reason=c.reason,
                terms_cny=dict(c.terms_cny),
                total_cny=c.total_cny,
            )
            for c in msg.candidates
        ),
    )


_MOVE_KINDS = {
    MoveKind.PLACE: rebalance_pb.MOVE_KIND_PLACE,
    MoveKind.MIGRATE: rebalance_pb.MOVE_KIND_MIGRATE,
    MoveKind.EVACUATE: rebalance_pb.MOVE_KIND_EVACUATE,
    MoveKind.FOLLOW_DEMAND: rebalance_pb.MOVE_KIND_FOLLOW_DEMAND,
}
_MOVE_KINDS_BACK = {v: k for k, v in _MOVE_KINDS.items()}


def move_to_proto(move: RebalanceMove) -> rebalance_pb.Move:
    """Domain move to wire move."""
    return rebalance_pb.Move(
        job_id=move.job_id,
        kind=_MOVE_KINDS[move.kind],
        from_site=move.from_site,
        to_site=move.to_site,
        savings_cny=move.savings_cny,
        savings_carbon_kg=move.savings_carbon_kg,
        cost_cny=move.cost_cny,
        reason=move.reason,
        applied=move.applied,
        error=move.error,
    )


def move_from_proto(msg: rebalance_pb.Move) -> RebalanceMove:
    """Wire move to domain move (an unknown kind reads as a migration)."""
    return RebalanceMove(
        job_id=msg.job_id,
        kind=_MOVE_KINDS_BACK.get(msg.kind, MoveKind.MIGRATE),
        from_site=msg.from_site,
        to_site=msg.to_site,
        savings_cny=msg.savings_cny,
        savings_carbon_kg=msg.savings_carbon_kg,
        cost_cny=msg.cost_cny,
        reason=msg.reason,
        applied=msg.applied,
        error=msg.error,
    )


def rebalance_run_to_proto(run: RebalanceRunInfo) -> rebalance_pb.RebalanceRun:
    """Domain run record to wire run record."""
    return rebalance_pb.RebalanceRun(
        run_id=run.run_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        started_unix_ms=run.started_unix_ms,
        ended_unix_ms=run.ended_unix_ms,
        moves=[move_to_proto(m) for m in run.moves],
        expected_savings_cny=run.expected_savings_cny,
        realised_savings_cny=run.realised_savings_cny,
        errors=list(run.errors),
    )


def rebalance_run_from_proto(msg: rebalance_pb.RebalanceRun) -> RebalanceRunInfo:
    """Wire run record to domain run record."""
    return RebalanceRunInfo(
        run_id=msg.run_id,
        trigger=msg.trigger,
        dry_run=msg.dry_run,
        started_unix_ms=msg.started_unix_ms,
        ended_unix_ms=msg.ended_unix_ms,
        moves=tuple(move_from_proto(m) for m in msg.moves),
        expected_savings_cny=msg.expected_savings_cny,
        realised_savings_cny=msg.realised_savings_cny,
        errors=tuple(msg.errors),
    )


def rebalance_run_page_to_proto(page: RebalanceRunPage) -> rebalance_pb.ListRebalanceRunsResponse:
    """Domain page of run records to the ListRebalanceRuns response."""
    return rebalance_pb.ListRebalanceRunsResponse(
        runs=[rebalance_run_to_proto(r) for r in page.runs], next_page_token=page.next_page_token
    )


def rebalance_run_page_from_proto(msg: rebalance_pb.ListRebalanceRunsResponse) -> RebalanceRunPage:
    """ListRebalanceRuns response to a domain page of run records."""
    return RebalanceRunPage(
        runs=[rebalance_run_from_proto(r) for r in msg.runs], next_page_token=msg.next_page_token
    )
