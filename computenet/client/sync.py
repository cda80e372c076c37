"""The blocking client of the broker's JobService and FederationService."""

from __future__ import annotations

import builtins
import datetime
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any

import grpc

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


class Client:
    """A connection to the broker, or to any of several broker replicas; every method returns
    domain objects or raises typed errors.

    `address` is one `HOST:PORT`, several separated by commas, or a list of them. Calls go to
    the address that last worked and move on to the next one (to the leader a replica names,
    first) when a replica cannot serve them; see `RetryPolicy` for the bounds. Channels are
    opened on first use. Use it as a context manager, or call `close()` (idempotent) when done.
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
        self._channels: dict[str, tuple[grpc.Channel, Stubs]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every channel; calling it again does nothing."""
        with self._lock:
            self._closed = True
            channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            channel.close()

    def _stubs(self, target: str) -> Stubs:
        with self._lock:
            if self._closed:
                raise RuntimeError("Client is closed")
            if target not in self._channels:
                if self._credentials is None:
                    channel = grpc.insecure_channel(target, options=channel_options())
                else:
                    channel = grpc.secure_channel(target, self._credentials, channel_options())
                self._channels[target] = (channel, Stubs.of(channel))
            return self._channels[target][1]

    def _unary(self, method: str, request: Any, *, idempotent: bool = True) -> Any:
        """Call `method` ("jobs.SubmitJob") on the replica the attempts lead to."""
        attempts = Attempts(self._pool, self._retry, idempotent=idempotent)
        while True:
            call = attrgetter(method)(self._stubs(attempts.target))
            try:
                response = call(request, timeout=self.timeout_s, metadata=self._metadata)
            except grpc.RpcError as err:
                failure = failure_of(err, self.timeout_s)
                wait_s = attempts.failed(failure)
                if wait_s is None:
                    raise give_up_error(err, failure, attempts, self.timeout_s) from None
                log.debug(
                    "retrying method=%s code=%s next=%s wait_s=%.2f",
                    method, failure.code, attempts.target, wait_s,
                )  # fmt: skip
                time.sleep(wait_s)
            else:
                attempts.succeeded()
                return response

    def _stream(
        self, open_call: Callable[[Stubs, int], Any], after_sequence: int, stop_at_final: bool
    ) -> Generator[JobEvent, None, None]:
        last_seen = after_sequence
        attempts = Attempts(self._pool, self._retry, idempotent=True)
        while True:
            call = open_call(self._stubs(attempts.target), last_seen)
            try:
                for response in call:
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
                time.sleep(wait_s)
            finally:
                call.cancel()

    def submit(
        self, spec: JobSpec | Mapping[str, Any], *, request_id: str | None = None
    ) -> SubmitResult:
        """Submit a job; every retry, at any replica, carries the same request id, so the
        federation accepts it once."""
        request = submit_request(spec, request_id or new_request_id())
        response = self._unary("jobs.SubmitJob", request)
        return SubmitResult(job=job_from_proto(response.job), duplicate=response.duplicate)

    def get(self, job_id: str) -> Job:
        """One job; raises JobNotFoundError."""
        response = self._unary("jobs.GetJob", job_pb.GetJobRequest(job_id=job_id))
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
        response = self._unary("jobs.ListJobs", request)
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
    ) -> Generator[JobEvent, None, None]:
        """Events of every matching job after `after_sequence`; resumes if the stream breaks."""
        request = watch_jobs_request(after_sequence=after_sequence, tenant=tenant, kind=kind)

        def open_call(stubs: Stubs, after: int) -> Any:
            request.after_sequence = after
            return stubs.jobs.WatchJobs(request, metadata=self._metadata)

        return self._stream(open_call, after_sequence, stop_at_final=False)

    def cancel(self, job_id: str, reason: str = "") -> Job:
        """Cancel a job; returns it cancelled, or still running until its site confirms."""
        request = job_pb.CancelJobRequest(job_id=job_id, reason=reason)
        # Safe to repeat: the broker answers a job already cancelled, or whose cancellation is
        # already requested, with the job itself.
        return job_from_proto(self._unary("jobs.CancelJob", request).job)

    def explain(self, job_id: str) -> Placement:
        """Why a job was placed where it was; for a pending job, where it would go now (a
        fresh plan of its spec on the leader's live capacity, every site with its verdict)."""
        request = job_pb.ExplainPlacementRequest(job_id=job_id)
        return placement_from_proto(self._unary("jobs.ExplainPlacement", request).placement)

    def plan(self, spec: JobSpec | Mapping[str, Any]) -> Placement:
        """Where a spec would go now and at what cost, without submitting it."""
        request = job_pb.PlanJobRequest(spec=spec_to_proto(coerce_spec(spec)))
        return placement_from_proto(self._unary("jobs.PlanJob", request).placement)

    def report_demand(
        self, job_id: str, weights: Mapping[str, float] | Sequence[tuple[str, float]]
    ) -> InferenceDemand:
        """Report where an inference job's users are now (weight or request rate per user
        region); returns the stored report. Raises InvalidArgumentError for an unknown region,
        a negative weight or a job that is not an inference job."""
        pairs = weights.items() if isinstance(weights, Mapping) else weights
        request = job_pb.ReportDemandRequest(job_id=job_id, weights=region_weights_to_proto(pairs))
        response = self._unary("jobs.ReportDemand", request)
        return demand_from_proto(response.demand)

    def sites(self, *, status: SiteStatus | str | None = None) -> builtins.list[SiteInfo]:
        """Every site of the federation with its live status, in topology order."""
        response = self._unary("federation.ListSites", list_sites_request(status))
        return [site_from_proto(s) for s in response.sites]

    def site(self, site_id: str) -> SiteInfo:
        """One site; raises SiteNotFoundError."""
        response = self._unary("federation.GetSite", fed_pb.GetSiteRequest(site_id=site_id))
        return site_from_proto(response.site)

    def cluster_status(self) -> ClusterStatus:
        """The broker replicas sharing the federation's database and which one leads."""
        request = fed_pb.GetClusterStatusRequest()
        return cluster_status_from_proto(self._unary("federation.GetClusterStatus", request))

    def drain(self, site_id: str, drain: bool = True) -> SiteInfo:
        """Stop (or with drain=False resume) placing work at a site."""
        request = fed_pb.DrainSiteRequest(site_id=site_id, drain=drain)
        return site_from_proto(self._unary("federation.DrainSite", request).site)

    def plan_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan a rebalancing run now without applying it (recorded as a dry run; operators)."""
        request = rebalance_pb.PlanRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = self._unary("rebalance.PlanRebalance", request)
        return rebalance_run_from_proto(response.run)

    def apply_rebalance(self, *, move_budget: int = 0) -> RebalanceRunInfo:
        """Plan and apply a rebalancing run now (operators). Not idempotent: repeated only at
        another replica when the first did nothing (not the leader, or never reached)."""
        request = rebalance_pb.ApplyRebalanceRequest(move_budget=checked_move_budget(move_budget))
        response = self._unary("rebalance.ApplyRebalance", request, idempotent=False)
        return rebalance_run_from_proto(response.run)

    def rebalance_runs(self, *, page_size: int = 20, page_token: str = "") -> RebalanceRunPage:
        """One page of past rebalancing runs, newest first (operators)."""
        request = rebalance_pb.ListRebalanceRunsRequest(page_size=page_size, page_token=page_token)
        return rebalance_run_page_from_proto(self._unary("rebalance.ListRebalanceRuns", request))

    def usage(
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
        return usage_report_from_proto(self._unary("accounting.GetUsage", request))

    def queue(self, *, tenant: str | None = None) -> builtins.list[QueuedJob]:
        """Pending jobs in admission order, each with why it waits (a user: its own)."""
        request = accounting_pb.ListQueueRequest(tenant=tenant or "")
        response = self._unary("accounting.ListQueue", request)
        return [queued_job_from_proto(j) for j in response.jobs]

    def tenants(self) -> builtins.list[TenantStatus]:
        """Each tenant's quota, borrowed and held cards, card-hours and fair share (a user:
        its own)."""
        response = self._unary("accounting.ListTenants", accounting_pb.ListTenantsRequest())
        return [tenant_status_from_proto(t) for t in response.tenants]
