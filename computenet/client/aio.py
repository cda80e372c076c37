"""The asyncio client of the broker's JobService and FederationService (grpc.aio)."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import grpc
import grpc.aio

from computenet.client._common import (
    DEFAULT_BROKER,
    DEFAULT_TIMEOUT_S,
    FINAL_STATES,
    JobPage,
    RetryPolicy,
    SubmitResult,
    call_metadata,
    channel_options,
    channel_target,
    checked_move_budget,
    coerce_spec,
    is_retryable,
    list_request,
    list_sites_request,
    new_request_id,
    retry_wait_s,
    submit_request,
    translate,
    watch_jobs_request,
)
from computenet.convert import (
    event_from_proto,
    job_from_proto,
    placement_from_proto,
    rebalance_run_from_proto,
    rebalance_run_page_from_proto,
    site_from_proto,
    spec_to_proto,
)
from computenet.rebalance_types import RebalanceRunInfo, RebalanceRunPage
from computenet.spec import JobSpec
from computenet.types import Job, JobEvent, JobKind, JobState, Placement, SiteInfo, SiteStatus
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2 as rebalance_pb
from computenet.v1 import rebalance_service_pb2_grpc as rebalance_grpc

log = logging.getLogger(__name__)


class AsyncClient:
    """The asyncio twin of `Client`: same methods, awaited; streams are async iterators.

    The channel is opened on first use, inside the running event loop. Use `async with`, or
    `await close()` (idempotent) when done.
    """

    def __init__(
        self,
        *,
        address: str = DEFAULT_BROKER,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._target = channel_target(address)
        self._credentials = credentials
        self._metadata = call_metadata(token)
        self._retry = retry or RetryPolicy()
        self._channel: grpc.aio.Channel | None = None
        self._job_stub: job_grpc.JobServiceStub | None = None
        self._federation_stub: fed_grpc.FederationServiceStub | None = None
        self._rebalance_stub: rebalance_grpc.RebalanceServiceStub | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calling it again does nothing."""
        self._closed = True
        channel, self._channel = self._channel, None
        self._job_stub = self._federation_stub = None
        self._rebalance_stub = None
        if channel is not None:
            await channel.close()

    def _open(self) -> grpc.aio.Channel:
        # grpc.aio channels bind to the loop they are created in, hence not in __init__.
        if self._closed:
            raise RuntimeError("AsyncClient is closed")
        if self._channel is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=channel_options())
            else:
                self._channel = grpc.aio.secure_channel(
                    self._target, self._credentials, channel_options()
                )
        return self._channel

    @property
    def _jobs(self) -> job_grpc.JobServiceStub:
        if self._job_stub is None:
            self._job_stub = job_grpc.JobServiceStub(self._open())
        return self._job_stub

    @property
    def _federation(self) -> fed_grpc.FederationServiceStub:
        if self._federation_stub is None:
            self._federation_stub = fed_grpc.FederationServiceStub(self._open())
        return self._federation_stub

    @property
    def _rebalance(self) -> rebalance_grpc.RebalanceServiceStub:
        if self._rebalance_stub is None:
            self._rebalance_stub = rebalance_grpc.RebalanceServiceStub(self._open())
        return self._rebalance_stub

    async def _unary(self, method: Callable[..., Any], request: Any, *, retry: bool = True) -> Any:
        failures = 0
        while True:
            try:
                return await method(request, timeout=self.timeout_s, metadata=self._metadata)
            except grpc.RpcError as err:
                failures += 1
                wait_s = retry_wait_s(err, self._retry, failures) if retry else None
                if wait_s is None:
                    raise translate(err, self._target, self.timeout_s) from None
                log.debug("retrying code=%s failures=%d wait_s=%.2f", err.code(), failures, wait_s)
                await asyncio.sleep(wait_s)

    async def _stream(
        self, open_call: Callable[[int], Any], after_sequence: int, stop_at_final: bool
    ) -> AsyncGenerator[JobEvent, None]:
        last_seen, failures = after_sequence, 0
        while True:
            call = open_call(last_seen)
            try:
                async for response in call:
                    event = event_from_proto(response.event)
                    last_seen, failures = max(last_seen, event.sequence), 0
                    yield event
                    if stop_at_final and event.state in FINAL_STATES:
                        return
                return
            except grpc.RpcError as err:
                failures += 1
                if not (is_retryable(err) and failures < self._retry.max_attempts):
                    raise translate(err, self._target, None) from None
                log.debug("resuming watch after_sequence=%d failures=%d", last_seen, failures)
                await asyncio.sleep(self._retry.backoff_s(failures))
            finally:
                call.cancel()

    async def submit(
        self, spec: JobSpec | Mapping[str, Any], *, request_id: str | None = None
    ) -> SubmitResult:
        """Submit a job; retries reuse the same request id, so the broker accepts it once."""
        request = submit_request(spec, request_id or new_request_id())
        response = await self._unary(self._jobs.SubmitJob, request)
        return SubmitResult(job=job_from_proto(response.job), duplicate=response.duplicate)

    async def get(self, job_id: str) -> Job:
        """One job; raises JobNotFoundError."""
        response = await self._unary(self._jobs.GetJob, job_pb.GetJobRequest(job_id=job_id))
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
        response = await self._unary(self._jobs.ListJobs, request)
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

        def open_call(after: int) -> Any:
            request = job_pb.WatchJobRequest(job_id=job_id, after_sequence=after)
            return self._jobs.WatchJob(request, metadata=self._metadata)

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

        def open_call(after: int) -> Any:
            request.after_sequence = after
            return self._jobs.WatchJobs(request, metadata=self._metadata)

        return self._stream(open_call, after_sequence, stop_at_final=False)

    async def cancel(self, job_id: str, reason: str = "") -> Job:
        """Cancel a job; returns it cancelled, or still running until its site confirms."""
        request = job_pb.CancelJobRequest(job_id=job_id, reason=reason)
        # Not retried: a repeat after a lost reply would report the job as already final.
        response = await self._unary(self._jobs.CancelJob, request, retry=False)
        return job_from_proto(response.job)

    async def explain(self, job_id: str) -> Placement:
        """Why a job was placed where it was; raises NotPlacedError if it never was."""
        request = job_pb.ExplainPlacementRequest(job_id=job_id)
        response = await self._unary(self._jobs.ExplainPlacement, request)
        return placement_from_proto(response.placement)

    async def plan(self, spec: JobSpec | Mapping[str, Any]) -> Placement:
        """Where a spec would go now and at what cost, without submitting it."""
        request = job_pb.PlanJobRequest(spec=spec_to_proto(coerce_spec(spec)))
        response = await self._unary(self._jobs.PlanJob, request)
        return placement_from_proto(response.placement)

    async def sites(self, *, status: SiteStatus | str | None = None) -> builtins.list[SiteInfo]:
        """Every site of the federation with its live status, in topology order."""
        response = await self._unary(self._federation.ListSites, list_sites_request(status))
        return [site_from_proto(s) for s in response.sites]

    async def site(self, site_id: str) -> SiteInfo:
        """One site; raises SiteNotFoundError."""
        request = fed_pb.GetSiteRequest(site_id=site_id)
        return site_from_proto((await self._unary(self._federation.GetSite, request)).site)

    async def drain(self, site_id: str, drain: bool = True) -> SiteInfo:
        """Stop (or with drain=False resume) placing work at a site."""
        request = fed_pb.DrainSiteRequest(site_id=site_id, drain=drain)
        return site_from_proto((await self._unary(self._federation.DrainSite, request)).site)

    async def plan_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan a rebalancing run now without applying it (recorded as a dry run; operators)."""
        request = rebalance_pb.PlanRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = await self._unary(self._rebalance.PlanRebalance, request)
        return rebalance_run_from_proto(response.run)

    async def apply_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan and apply a rebalancing run now (operators); never retried, it is not idempotent."""
        request = rebalance_pb.ApplyRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = await self._unary(self._rebalance.ApplyRebalance, request, retry=False)
        return rebalance_run_from_proto(response.run)

    async def rebalance_runs(
        self, *, page_size: int = 20, page_token: str = ""
    ) -> RebalanceRunPage:
        """One page of past rebalancing runs, newest first (operators)."""
        request = rebalance_pb.ListRebalanceRunsRequest(page_size=page_size, page_token=page_token)
        return rebalance_run_page_from_proto(
            await self._unary(self._rebalance.ListRebalanceRuns, request)
        )
