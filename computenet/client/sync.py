"""The blocking client of the broker's JobService and FederationService."""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import grpc

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


class Client:
    """A connection to one broker; every method returns domain objects or raises typed errors.

    Use it as a context manager, or call `close()` (idempotent) when done.
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
        self._metadata = call_metadata(token)
        self._retry = retry or RetryPolicy()
        if credentials is None:
            self._channel = grpc.insecure_channel(self._target, options=channel_options())
        else:
            self._channel = grpc.secure_channel(self._target, credentials, channel_options())
        self._jobs = job_grpc.JobServiceStub(self._channel)
        self._federation = fed_grpc.FederationServiceStub(self._channel)
        self._rebalance = rebalance_grpc.RebalanceServiceStub(self._channel)
        self._closed = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._channel.close()

    def _unary(self, method: Callable[..., Any], request: Any, *, retry: bool = True) -> Any:
        failures = 0
        while True:
            try:
                return method(request, timeout=self.timeout_s, metadata=self._metadata)
            except grpc.RpcError as err:
                failures += 1
                wait_s = retry_wait_s(err, self._retry, failures) if retry else None
                if wait_s is None:
                    raise translate(err, self._target, self.timeout_s) from None
                log.debug("retrying code=%s failures=%d wait_s=%.2f", err.code(), failures, wait_s)
                time.sleep(wait_s)

    def _stream(
        self, open_call: Callable[[int], Any], after_sequence: int, stop_at_final: bool
    ) -> Generator[JobEvent, None, None]:
        last_seen, failures = after_sequence, 0
        while True:
            call = open_call(last_seen)
            try:
                for response in call:
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
                time.sleep(self._retry.backoff_s(failures))
            finally:
                call.cancel()

    def submit(
        self, spec: JobSpec | Mapping[str, Any], *, request_id: str | None = None
    ) -> SubmitResult:
        """Submit a job; retries reuse the same request id, so the broker accepts it once."""
        request = submit_request(spec, request_id or new_request_id())
        response = self._unary(self._jobs.SubmitJob, request)
        return SubmitResult(job=job_from_proto(response.job), duplicate=response.duplicate)

    def get(self, job_id: str) -> Job:
        """One job; raises JobNotFoundError."""
        response = self._unary(self._jobs.GetJob, job_pb.GetJobRequest(job_id=job_id))
        return job_from_proto(response.job)

    def list_page(
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
        response = self._unary(self._jobs.ListJobs, request)
        jobs = [job_from_proto(j) for j in response.jobs]
        return JobPage(jobs=jobs, next_page_token=response.next_page_token)

    def list(
        self,
        *,
        state: JobState | str | None = None,
        kind: JobKind | str | None = None,
        site: str | None = None,
        tenant: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Every job matching the filters, oldest first, fetching pages as needed."""
        token = ""
        while True:
            page = self.list_page(
                state=state, kind=kind, site=site, tenant=tenant,
                page_size=page_size, page_token=token,
            )  # fmt: skip
            yield from page.jobs
            if not page.next_page_token:
                return
            token = page.next_page_token

    def watch(self, job_id: str, *, after_sequence: int = 0) -> Generator[JobEvent, None, None]:
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
    ) -> Generator[JobEvent, None, None]:
        """Events of every matching job after `after_sequence`; resumes if the stream breaks."""
        request = watch_jobs_request(after_sequence=after_sequence, tenant=tenant, kind=kind)

        def open_call(after: int) -> Any:
            request.after_sequence = after
            return self._jobs.WatchJobs(request, metadata=self._metadata)

        return self._stream(open_call, after_sequence, stop_at_final=False)

    def cancel(self, job_id: str, reason: str = "") -> Job:
        """Cancel a job; returns it cancelled, or still running until its site confirms."""
        request = job_pb.CancelJobRequest(job_id=job_id, reason=reason)
        # Not retried: a repeat after a lost reply would report the job as already final.
        return job_from_proto(self._unary(self._jobs.CancelJob, request, retry=False).job)

    def explain(self, job_id: str) -> Placement:
        """Why a job was placed where it was; raises NotPlacedError if it never was."""
        request = job_pb.ExplainPlacementRequest(job_id=job_id)
        return placement_from_proto(self._unary(self._jobs.ExplainPlacement, request).placement)

    def plan(self, spec: JobSpec | Mapping[str, Any]) -> Placement:
        """Where a spec would go now and at what cost, without submitting it."""
        request = job_pb.PlanJobRequest(spec=spec_to_proto(coerce_spec(spec)))
        return placement_from_proto(self._unary(self._jobs.PlanJob, request).placement)

    def sites(self, *, status: SiteStatus | str | None = None) -> builtins.list[SiteInfo]:
        """Every site of the federation with its live status, in topology order."""
        response = self._unary(self._federation.ListSites, list_sites_request(status))
        return [site_from_proto(s) for s in response.sites]

    def site(self, site_id: str) -> SiteInfo:
        """One site; raises SiteNotFoundError."""
        response = self._unary(self._federation.GetSite, fed_pb.GetSiteRequest(site_id=site_id))
        return site_from_proto(response.site)

    def drain(self, site_id: str, drain: bool = True) -> SiteInfo:
        """Stop (or with drain=False resume) placing work at a site."""
        request = fed_pb.DrainSiteRequest(site_id=site_id, drain=drain)
        return site_from_proto(self._unary(self._federation.DrainSite, request).site)

    def plan_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan a rebalancing run now without applying it (recorded as a dry run; operators)."""
        request = rebalance_pb.PlanRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = self._unary(self._rebalance.PlanRebalance, request)
        return rebalance_run_from_proto(response.run)

    def apply_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan and apply a rebalancing run now (operators); never retried, it is not idempotent."""
        request = rebalance_pb.ApplyRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = self._unary(self._rebalance.ApplyRebalance, request, retry=False)
        return rebalance_run_from_proto(response.run)

    def rebalance_runs(self, *, page_size: int = 20, page_token: str = "") -> RebalanceRunPage:
        """One page of past rebalancing runs, newest first (operators)."""
        request = rebalance_pb.ListRebalanceRunsRequest(page_size=page_size, page_token=page_token)
        return rebalance_run_page_from_proto(
            self._unary(self._rebalance.ListRebalanceRuns, request)
        )
