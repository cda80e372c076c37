"""JobService over gRPC: owns the wire types and the context, delegates to JobManager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from broker.jobs_api.manager import JobManager
from broker.rpc.errors import translate_errors
from broker.rpc.paging import DEFAULT_PAGE_BYTES, bounded_page, fit
from broker.security.principal import require_principal
from broker.store.protocol import JobFilter
from computenet import convert
from computenet.errors import FieldViolation, InvalidArgumentError
from computenet.spec import JobSpec
from computenet.types import JobId, JobKind, JobState, Placement, SiteId, TenantId
from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import job_service_pb2_grpc as pb_grpc

Planner = Callable[[JobSpec], Awaitable[Placement]]


def _tenant() -> TenantId:
    """The caller's tenant, as authenticated by the security interceptors."""
    return TenantId(require_principal().tenant)


def _scope() -> TenantId | None:
    """Whose jobs the caller may see: its own tenant's, or every tenant's for an operator.

    Another tenant's job is simply absent for a user (NOT_FOUND), never FORBIDDEN, so job ids
    reveal nothing across tenants.
    """
    principal = require_principal()
    return None if principal.is_operator else TenantId(principal.tenant)


def _kind_filter(value: int) -> JobKind | None:
    """A kind filter: None for UNSPECIFIED (any kind).

    A value this broker does not know is refused rather than read as "any", which would
    widen the caller's filter.
    """
    kind = convert.kind_from_proto(value)
    if kind is None and value != 0:
        raise InvalidArgumentError(
            "invalid request", [FieldViolation("kind", f"unknown job kind {value}")]
        )
    return kind


def _state_filter(value: int) -> JobState | None:
    """A state filter: None for UNSPECIFIED (any state); unknown values are refused."""
    state = convert.state_from_proto(value)
    if state is None and value != 0:
        raise InvalidArgumentError(
            "invalid request", [FieldViolation("state", f"unknown job state {value}")]
        )
    return state


class JobServicer(pb_grpc.JobServiceServicer):
    """gRPC edge of the jobs API."""

    def __init__(
        self, jobs: JobManager, planner: Planner, *, max_page_bytes: int = DEFAULT_PAGE_BYTES
    ) -> None:
        self._jobs = jobs
        self._plan = planner
        self._max_page_bytes = max_page_bytes
        """Byte budget of a ListJobs page and of any one answer (under the message limit)."""

    @translate_errors
    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        spec = convert.spec_from_proto(request.spec)
        job, duplicate = await self._jobs.submit(spec, request.request_id, _tenant())
        answer = fit(convert.job_to_proto(job), self._max_page_bytes)
        return pb.SubmitJobResponse(job=answer, duplicate=duplicate)

    @translate_errors
    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJobResponse:
        job = await self._jobs.get(JobId(request.job_id), _scope())
        return pb.GetJobResponse(job=fit(convert.job_to_proto(job), self._max_page_bytes))

    @translate_errors
    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        state = _state_filter(request.state)
        scope = _scope()
        asked = TenantId(request.tenant) if request.tenant else None
        flt = JobFilter(
            states=frozenset({state}) if state else None,
            kind=_kind_filter(request.kind),
            site=SiteId(request.site) if request.site else None,
            tenant=scope if scope is not None else asked,
        )
        if scope is not None and asked not in (None, scope):
            return pb.ListJobsResponse()
        page = await self._jobs.list(flt, request.page_size, request.page_token)
        jobs, next_token = bounded_page(
            [convert.job_to_proto(j) for j in page.jobs],
            page.resume_tokens,
            page.next_page_token,
            self._max_page_bytes,
        )
        return pb.ListJobsResponse(jobs=jobs, next_page_token=next_token)

    @translate_errors
    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchJobResponse]:
        job = await self._jobs.get(JobId(request.job_id), _scope())
        events = self._jobs.watch(request.after_sequence, job_id=job.job_id, stop_at_final=True)
        async for event in events:
            yield fit(
                pb.WatchJobResponse(event=convert.event_to_proto(event)), self._max_page_bytes
            )

    @translate_errors
    async def WatchJobs(
        self, request: pb.WatchJobsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchJobsResponse]:
        kind = _kind_filter(request.kind)
        scope = _scope()
        asked = TenantId(request.tenant) if request.tenant else None
        if scope is not None and asked not in (None, scope):
            return
        tenant = scope if scope is not None else asked
        events = self._jobs.watch(request.after_sequence, tenant=tenant, kind=kind)
        async for event in events:
            yield fit(
                pb.WatchJobsResponse(event=convert.event_to_proto(event)), self._max_page_bytes
            )

    @translate_errors
    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        job = await self._jobs.cancel(JobId(request.job_id), request.reason, _scope())
        return pb.CancelJobResponse(job=fit(convert.job_to_proto(job), self._max_page_bytes))

    @translate_errors
    async def ExplainPlacement(
        self, request: pb.ExplainPlacementRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExplainPlacementResponse:
        placement = await self._jobs.explain(JobId(request.job_id), _scope(), live=True)
        return pb.ExplainPlacementResponse(placement=convert.placement_to_proto(placement))

    @translate_errors
    async def PlanJob(
        self, request: pb.PlanJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlanJobResponse:
        spec = self._jobs.validate(convert.spec_from_proto(request.spec))
        placement = await self._plan(spec)
        return pb.PlanJobResponse(placement=convert.placement_to_proto(placement))

    @translate_errors
    async def ReportDemand(
        self, request: pb.ReportDemandRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportDemandResponse:
        weights = convert.region_weights_from_proto(request.weights)
        demand = await self._jobs.report_demand(JobId(request.job_id), weights, _scope())
        return pb.ReportDemandResponse(demand=convert.demand_to_proto(demand))
