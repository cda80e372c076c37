"""The asyncio client of the broker's JobService and FederationService (grpc.aio)."""

from __future__ import annotations

import asyncio
import builtins
import datetime
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import grpc
import grpc.aio

from computenet.client._common import (
    DEFAULT_BROKER,
    DEFAULT_TIMEOUT_S,
    FINAL_STATES,
    JobPage,
    RetryPolicy,
    Stubs,
    SubmitResult,
    call_metadata,
    channel_options,
    checked_move_budget,
    coerce_spec,
    list_request,
    list_sites_request,
    new_request_id,
    submit_request,
    usage_request,
    watch_jobs_request,
)
from computenet.client._failover import (
    AddressPool,
    Attempts,
    failure_of,
    give_up_error,
    parse_targets,
)
from computenet.convert import (
    cluster_status_from_proto,
    demand_from_proto,
    event_from_proto,
    job_from_proto,
    placement_from_proto,
    queued_job_from_proto,
    rebalance_run_from_proto,
    rebalance_run_page_from_proto,
    region_weights_to_proto,
    site_from_proto,
    spec_to_proto,
    tenant_status_from_proto,
    usage_report_from_proto,
)
from computenet.rebalance_types import RebalanceRunInfo, RebalanceRunPage
from computenet.spec import JobSpec
from computenet.types import (
    ClusterStatus,
    InferenceDemand,
    Job,
    JobEvent,
    JobKind,
    JobState,
    Placement,
    SiteInfo,
    SiteStatus,
)
from computenet.usage import QueuedJob, TenantStatus, UsageGrouping, UsageReport
from computenet.v1 import accounting_service_pb2 as accounting_pb
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import rebalance_service_pb2 as rebalance_pb

log = logging.getLogger(__name__)


class AsyncClient:
    """The asyncio twin of `Client`: same methods, awaited; streams are async iterators.

    `address` is one `HOST:PORT`, several separated by commas, or a list of them, with the same
    failover as `Client`. Channels are opened on first use, inside the running event loop. Use
    `async with`, or `await close()` (idempotent) when done.
    """

    def __init__(
        self,
        *,
        address: str | Sequence[str] = DEFAULT_BROKER,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._pool = AddressPool(parse_targets(address))
        self.address = address if isinstance(address, str) else ",".join(address)
        self.addresses = tuple(self._pool.targets)
        """The configured replica addresses, in order."""
        self.timeout_s = timeout_s
        self._credentials = credentials
        self._metadata = call_metadata(token)
        self._retry = retry or RetryPolicy()
        self._channels: dict[str, tuple[grpc.aio.Channel, Stubs]] = {}
        self._closed = False

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every channel; calling it again does nothing."""
        self._closed = True
        channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            await channel.close()

    def _stubs(self, target: str) -> Stubs:
        # grpc.aio channels bind to the loop they are created in, hence not in __init__.
        if self._closed:
            raise RuntimeError("AsyncClient is closed")
        if target not in self._channels:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(target, options=channel_options())
            else:
                channel = grpc.aio.secure_channel(target, self._credentials, channel_options())
            self._channels[target] = (channel, Stubs.of(channel))
        return self._channels[target][1]

    async def _unary(self, method: str, request: Any, *, idempotent: bool = True) -> Any:
        """Call `method` ("jobs.SubmitJob") on the replica the attempts lead to."""
        attempts = Attempts(self._pool, self._retry, idempotent=idempotent)
        while True:
            call = attrgetter(method)(self._stubs(attempts.target))
            try:
                response = await call(request, timeout=self.timeout_s, metadata=self._metadata)
            except grpc.RpcError as err:
                failure = failure_of(err, self.timeout_s)
                wait_s = attempts.failed(failure)
                if wait_s is None:
                    raise give_up_error(err, failure, attempts, self.timeout_s) from None
                log.debug(
                    "retrying method=%s code=%s next=%s wait_s=%.2f",
                    method, failure.code, attempts.target, wait_s,
                )  # fmt: skip
                await asyncio.sleep(wait_s)
            else:
                attempts.succeeded()
                return response

    async def _stream(
        self, open_call: Callable[[Stubs, int], Any], after_sequence: int, stop_at_final: bool
    ) -> AsyncGenerator[JobEvent, None]:
        last_seen = after_sequence
        attempts = Attempts(self._pool, self._retry, idempotent=True)
        while True:
            call = open_call(self._stubs(attempts.target), last_seen)
            try:
                async for response in call:
                    event = event_from_proto(response.event)
                    if event.sequence <= last_seen:
                        continue  # already delivered, by this replica or the one before
                    last_seen = event.sequence
                    attempts.progressed()
                    yield event
                    if stop_at_final and event.state in FINAL_STATES:
                        return
                return
            except grpc.RpcError as err:
                failure = failure_of(err, None)
                wait_s = attempts.failed(failure)
                if wait_s is None:
                    raise give_up_error(err, failure, attempts, None) from None
                log.debug(
                    "resuming watch after_sequence=%d next=%s wait_s=%.2f",
                    last_seen, attempts.target, wait_s,
                )  # fmt: skip
                await asyncio.sleep(wait_s)
            finally:
                call.cancel()

    async def submit(
        self, spec: JobSpec | Mapping[str, Any], *, request_id: str | None = None
    ) -> SubmitResult:
        """Submit a job; every retry, at any replica, carries the same request id, so the
        federation accepts it once."""
        request = submit_request(spec, request_id or new_request_id())
        response = await self._unary("jobs.SubmitJob", request)
        return SubmitResult(job=job_from_proto(response.job), duplicate=response.duplicate)

    async def get(self, job_id: str) -> Job:
        """One job; raises JobNotFoundError."""
        response = await self._unary("jobs.GetJob", job_pb.GetJobRequest(job_id=job_id))
        return job_from_proto(response.job)

    async def list_page(
        self,
        *,
        state: JobState | str | None = None,
        kind: JobKind | str | None = None,
        site: str | None = None,
        tenant: str | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> JobPage:
        """One page of jobs matching the filters, oldest first."""
        request = list_request(
            state=state, kind=kind, site=site, tenant=tenant,
            page_size=page_size, page_token=page_token,
        )  # fmt: skip
        response = await self._unary("jobs.ListJobs", request)
        jobs = [job_from_proto(j) for j in response.jobs]
        return JobPage(jobs=jobs, next_page_token=response.next_page_token)

    async def list(
        self,
        *,
        state: JobState | str | None = None,
        kind: JobKind | str | None = None,
        site: str | None = None,
        tenant: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Every job matching the filters, oldest first, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list_page(
                state=state, kind=kind, site=site, tenant=tenant,
                page_size=page_size, page_token=token,
            )  # fmt: skip
            for job in page.jobs:
                yield job
            if not page.next_page_token:
                return
            token = page.next_page_token

    def watch(self, job_id: str, *, after_sequence: int = 0) -> AsyncGenerator[JobEvent, None]:
        """A job's events after `after_sequence` up to a final state; resumes a broken stream."""

        def open_call(stubs: Stubs, after: int) -> Any:
            request = job_pb.WatchJobRequest(job_id=job_id, after_sequence=after)
            return stubs.jobs.WatchJob(request, metadata=self._metadata)

        return self._stream(open_call, after_sequence, stop_at_final=True)

    def watch_all(
        self,
        *,
        after_sequence: int = 0,
        tenant: str | None = None,
        kind: JobKind | str | None = None,
    ) -> AsyncGenerator[JobEvent, None]:
        """Events of every matching job after `after_sequence`; resumes if the stream breaks."""
        request = watch_jobs_request(after_sequence=after_sequence, tenant=tenant, kind=kind)

        def open_call(stubs: Stubs, after: int) -> Any:
            request.after_sequence = after
            return stubs.jobs.WatchJobs(request, metadata=self._metadata)

        return self._stream(open_call, after_sequence, stop_at_final=False)

    async def cancel(self, job_id: str, reason: str = "") -> Job:
        """Cancel a job; returns it cancelled, or still running until its site confirms."""
        request = job_pb.CancelJobRequest(job_id=job_id, reason=reason)
        # Safe to repeat: the broker answers a job already cancelled, or whose cancellation is
        # already requested, with the job itself.
        response = await self._unary("jobs.CancelJob", request)
        return job_from_proto(response.job)

    async def explain(self, job_id: str) -> Placement:
        """Why a job was placed where it was; for a pending job, where it would go now (a
        fresh plan of its spec on the leader's live capacity, every site with its verdict)."""
        request = job_pb.ExplainPlacementRequest(job_id=job_id)
        response = await self._unary("jobs.ExplainPlacement", request)
        return placement_from_proto(response.placement)

    async def plan(self, spec: JobSpec | Mapping[str, Any]) -> Placement:
        """Where a spec would go now and at what cost, without submitting it."""
        request = job_pb.PlanJobRequest(spec=spec_to_proto(coerce_spec(spec)))
        response = await self._unary("jobs.PlanJob", request)
        return placement_from_proto(response.placement)

    async def report_demand(
        self, job_id: str, weights: Mapping[str, float] | Sequence[tuple[str, float]]
    ) -> InferenceDemand:
        """Report where an inference job's users are now (weight or request rate per user
        region); returns the stored report. Raises InvalidArgumentError for an unknown region,
        a negative weight or a job that is not an inference job."""
        pairs = weights.items() if isinstance(weights, Mapping) else weights
        request = job_pb.ReportDemandRequest(job_id=job_id, weights=region_weights_to_proto(pairs))
        response = await self._unary("jobs.ReportDemand", request)
        return demand_from_proto(response.demand)

    async def sites(self, *, status: SiteStatus | str | None = None) -> builtins.list[SiteInfo]:
        """Every site of the federation with its live status, in topology order."""
        response = await self._unary("federation.ListSites", list_sites_request(status))
        return [site_from_proto(s) for s in response.sites]

    async def site(self, site_id: str) -> SiteInfo:
        """One site; raises SiteNotFoundError."""
        request = fed_pb.GetSiteRequest(site_id=site_id)
        return site_from_proto((await self._unary("federation.GetSite", request)).site)

    async def cluster_status(self) -> ClusterStatus:
        """The broker replicas sharing the federation's database and which one leads."""
        request = fed_pb.GetClusterStatusRequest()
        response = await self._unary("federation.GetClusterStatus", request)
        return cluster_status_from_proto(response)

    async def drain(self, site_id: str, drain: bool = True) -> SiteInfo:
        """Stop (or with drain=False resume) placing work at a site."""
        request = fed_pb.DrainSiteRequest(site_id=site_id, drain=drain)
        return site_from_proto((await self._unary("federation.DrainSite", request)).site)

    async def plan_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan a rebalancing run now without applying it (recorded as a dry run; operators)."""
        request = rebalance_pb.PlanRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = await self._unary("rebalance.PlanRebalance", request)
        return rebalance_run_from_proto(response.run)

    async def apply_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan and apply a rebalancing run now (operators). Not idempotent: repeated only at
        another replica when the first did nothing (not the leader, or never reached)."""
        request = rebalance_pb.ApplyRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = await self._unary("rebalance.ApplyRebalance", request, idempotent=False)
        return rebalance_run_from_proto(response.run)

    async def rebalance_runs(
        self, *, page_size: int = 20, page_token: str = ""
    ) -> RebalanceRunPage:
        """One page of past rebalancing runs, newest first (operators)."""
        request = rebalance_pb.ListRebalanceRunsRequest(page_size=page_size, page_token=page_token)
        return rebalance_run_page_from_proto(
            await self._unary("rebalance.ListRebalanceRuns", request)
        )

    async def usage(
        self,
        *,
        tenant: str | None = None,
        since: datetime.date | str | None = None,
        until: datetime.date | str | None = None,
        by: UsageGrouping | str = UsageGrouping.TENANT,
    ) -> UsageReport:
        """Recorded usage grouped by tenant, site, model or day (CST), days `since` to `until`
        included. A user sees its own tenant (another raises PermissionDeniedError); an
        operator sees every tenant, or the one named."""
        request = usage_request(tenant, since, until, by)
        return usage_report_from_proto(await self._unary("accounting.GetUsage", request))

    async def queue(self, *, tenant: str | None = None) -> builtins.list[QueuedJob]:
        """Pending jobs in admission order, each with why it waits (a user: its own)."""
        request = accounting_pb.ListQueueRequest(tenant=tenant or "")
        response = await self._unary("accounting.ListQueue", request)
        return [queued_job_from_proto(j) for j in response.jobs]

    async def tenants(self) -> builtins.list[TenantStatus]:
        """Each tenant's quota, borrowed and held cards, card-hours and fair share (a user:
        its own)."""
        response = await self._unary("accounting.ListTenants", accounting_pb.ListTenantsRequest())
        return [tenant_status_from_proto(t) for t in response.tenants]
