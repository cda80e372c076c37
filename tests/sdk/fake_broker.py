"""A scripted, in-memory stand-in for the broker's JobService and FederationService."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from computenet.convert import (
    event_to_proto,
    job_to_proto,
    placement_to_proto,
    site_to_proto,
    spec_from_proto,
)
from computenet.errors import ComputeNetError, JobNotFoundError, SiteNotFoundError
from computenet.status import error_to_status
from computenet.types import (
    CandidateSite,
    Job,
    JobEvent,
    JobId,
    JobState,
    Placement,
    PoolCapacity,
    SiteId,
    SiteInfo,
    SiteStatus,
    TenantId,
)
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc

PLACEMENT = Placement(
    chosen=SiteId("gansu-qingyang"),
    candidates=(
        CandidateSite(SiteId("gansu-qingyang"), True, "", {"energy": 10.5, "carbon": 2.0}, 12.5),
        CandidateSite(SiteId("beijing-yizhuang"), False, "no free a800", {}, 0.0),
    ),
)


@dataclass
class Script:
    """What the stand-in should do, and what it saw."""

    submit_unavailable: int = 0
    """Fail this many SubmitJob calls with UNAVAILABLE before answering."""
    reject_submit: ComputeNetError | None = None
    """Answer SubmitJob with this error (after any UNAVAILABLE failures)."""
    break_watch_after: int | None = None
    """Break the first WatchJob stream with UNAVAILABLE after this many events."""
    submit_request_ids: list[str] = field(default_factory=list)
    watch_after_sequences: list[int] = field(default_factory=list)
    list_page_tokens: list[str] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)


def _abort(context: grpc.ServicerContext, exc: ComputeNetError) -> None:
    context.abort_with_status(error_to_status(exc))


class FakeBroker(job_grpc.JobServiceServicer, fed_grpc.FederationServiceServicer):
    """Jobs, events and sites kept in memory; one event sequence for all jobs."""

    def __init__(self) -> None:
        self.script = Script()
        self.jobs: dict[str, Job] = {}
        self.events: list[JobEvent] = []
        self.by_request_id: dict[str, str] = {}
        self.sites = {
            "gansu-qingyang": SiteInfo(
                SiteId("gansu-qingyang"), "Qingyang", "Gansu", "west", SiteStatus.ACTIVE,
                (PoolCapacity("a800", 16, 16, 4),), last_report_unix_ms=1,
            ),
            "beijing-yizhuang": SiteInfo(
                SiteId("beijing-yizhuang"), "Yizhuang", "Beijing", "east", SiteStatus.OFFLINE,
            ),
        }  # fmt: skip
        self._lock = threading.Lock()

    def _seen(self, context: grpc.ServicerContext) -> None:
        self.script.metadata.append({k: v for k, v in context.invocation_metadata()})

    def add_event(self, job_id: str, state: JobState, cause: str, exit_code: int | None = None):
        job = self.jobs[job_id]
        event = JobEvent(
            len(self.events) + 1, JobId(job_id), state, cause, 1000 + len(self.events),
            site=job.site, attempt=job.attempt, exit_code=exit_code,
        )  # fmt: skip
        self.events.append(event)
        self.jobs[job_id] = Job(
            job.job_id, job.tenant, job.spec, state, job.site, job.attempt, job.reason,
            exit_code, event.sequence, job.created_unix_ms, event.time_unix_ms, job.request_id,
        )  # fmt: skip

    def SubmitJob(self, request: job_pb.SubmitJobRequest, context: Any) -> Any:
        self._seen(context)
        self.script.submit_request_ids.append(request.request_id)
        if self.script.submit_unavailable > 0:
            self.script.submit_unavailable -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "broker restarting")
        if self.script.reject_submit is not None:
            _abort(context, self.script.reject_submit)
        try:
            spec = spec_from_proto(request.spec)
        except ComputeNetError as exc:
            _abort(context, exc)
        with self._lock:
            known = self.by_request_id.get(request.request_id)
            if known is not None:
                return job_pb.SubmitJobResponse(job=job_to_proto(self.jobs[known]), duplicate=True)
            job_id = f"j-{len(self.jobs) + 1}"
            self.jobs[job_id] = Job(
                JobId(job_id), TenantId("demo"), spec, JobState.PENDING,
                reason="no site with free a800", request_id=request.request_id,
            )  # fmt: skip
            self.by_request_id[request.request_id] = job_id
            self.add_event(job_id, JobState.PENDING, "submitted")
        return job_pb.SubmitJobResponse(job=job_to_proto(self.jobs[job_id]))

    def _job(self, job_id: str, context: Any) -> Job:
        if job_id not in self.jobs:
            _abort(context, JobNotFoundError(f"job {job_id} not found"))
        return self.jobs[job_id]

    def GetJob(self, request: job_pb.GetJobRequest, context: Any) -> Any:
        self._seen(context)
        return job_pb.GetJobResponse(job=job_to_proto(self._job(request.job_id, context)))

    def ListJobs(self, request: job_pb.ListJobsRequest, context: Any) -> Any:
        self.script.list_page_tokens.append(request.page_token)
        start = int(request.page_token or 0)
        jobs = list(self.jobs.values())
        page = jobs[start : start + request.page_size]
        more = start + request.page_size < len(jobs)
        return job_pb.ListJobsResponse(
            jobs=[job_to_proto(j) for j in page],
            next_page_token=str(start + request.page_size) if more else "",
        )

    def WatchJob(self, request: job_pb.WatchJobRequest, context: Any) -> Iterator[Any]:
        self._job(request.job_id, context)
        self.script.watch_after_sequences.append(request.after_sequence)
        sent = 0
        for event in self.events:
            if event.job_id != request.job_id or event.sequence <= request.after_sequence:
                continue
            if self.script.break_watch_after is not None and sent == self.script.break_watch_after:
                self.script.break_watch_after = None
                context.abort(grpc.StatusCode.UNAVAILABLE, "stream broken")
            yield job_pb.WatchJobResponse(event=event_to_proto(event))
            sent += 1

    def WatchJobs(self, request: job_pb.WatchJobsRequest, context: Any) -> Iterator[Any]:
        self.script.watch_after_sequences.append(request.after_sequence)
        for event in self.events:
            if event.sequence <= request.after_sequence:
                continue
            if self.script.break_watch_after is not None and event.sequence > 2:
                self.script.break_watch_after = None
                context.abort(grpc.StatusCode.UNAVAILABLE, "stream broken")
            yield job_pb.WatchJobsResponse(event=event_to_proto(event))

    def CancelJob(self, request: job_pb.CancelJobRequest, context: Any) -> Any:
        self._job(request.job_id, context)
        self.add_event(request.job_id, JobState.CANCELLED, "cancel_requested")
        return job_pb.CancelJobResponse(job=job_to_proto(self.jobs[request.job_id]))

    def ExplainPlacement(self, request: job_pb.ExplainPlacementRequest, context: Any) -> Any:
        self._job(request.job_id, context)
        return job_pb.ExplainPlacementResponse(placement=placement_to_proto(PLACEMENT))

    def PlanJob(self, request: job_pb.PlanJobRequest, context: Any) -> Any:
        return job_pb.PlanJobResponse(placement=placement_to_proto(PLACEMENT))

    def ListSites(self, request: fed_pb.ListSitesRequest, context: Any) -> Any:
        return fed_pb.ListSitesResponse(sites=[site_to_proto(s) for s in self.sites.values()])

    def _site(self, site_id: str, context: Any) -> SiteInfo:
        if site_id not in self.sites:
            _abort(context, SiteNotFoundError(f"site {site_id} not found"))
        return self.sites[site_id]

    def GetSite(self, request: fed_pb.GetSiteRequest, context: Any) -> Any:
        return fed_pb.GetSiteResponse(site=site_to_proto(self._site(request.site_id, context)))

    def GetTopology(self, request: fed_pb.GetTopologyRequest, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not scripted")

    def DrainSite(self, request: fed_pb.DrainSiteRequest, context: Any) -> Any:
        site = self._site(request.site_id, context)
        status = SiteStatus.DRAINING if request.drain else SiteStatus.ACTIVE
        self.sites[site.site_id] = SiteInfo(
            site.site_id, site.name, site.province, site.side, status, site.pools
        )
        return fed_pb.DrainSiteResponse(site=site_to_proto(self.sites[site.site_id]))


@dataclass
class RunningFake:
    """A started stand-in and the address it listens on."""

    broker: FakeBroker
    address: str
    server: grpc.Server


def start_fake_broker() -> RunningFake:
    """Start the stand-in on 127.0.0.1 with an OS-chosen port."""
    broker = FakeBroker()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    job_grpc.add_JobServiceServicer_to_server(broker, server)
    fed_grpc.add_FederationServiceServicer_to_server(broker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return RunningFake(broker, f"127.0.0.1:{port}", server)
