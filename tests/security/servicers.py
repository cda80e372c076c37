"""Small ComputeNet servicers for the security tests: they answer with the caller's identity
and count every invocation, so a test can prove that no handler ran for a refused call."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc.aio

from broker.rpc.errors import translate_errors
from broker.security import check_hello_site, current_principal, current_site, require_principal
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2 as reb_pb
from computenet.v1 import rebalance_service_pb2_grpc as reb_grpc
from computenet.v1 import site_service_pb2 as site_pb
from computenet.v1 import site_service_pb2_grpc as site_grpc
from computenet.v1 import types_pb2 as pb

Ctx: TypeAlias = grpc.aio.ServicerContext


class Calls(Counter[str]):
    """Handler invocations by method name."""


class JobService(job_grpc.JobServiceServicer):  # type: ignore[misc]
    """GetJob answers with the principal: job_id = token name, tenant = tenant."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    @translate_errors
    async def GetJob(self, request: job_pb.GetJobRequest, context: Ctx) -> job_pb.GetJobResponse:
        self.calls["GetJob"] += 1
        principal = require_principal()
        return job_pb.GetJobResponse(job=pb.Job(job_id=principal.name, tenant=principal.tenant))

    @translate_errors
    async def SubmitJob(
        self, request: job_pb.SubmitJobRequest, context: Ctx
    ) -> job_pb.SubmitJobResponse:
        self.calls["SubmitJob"] += 1
        tenant = require_principal().tenant
        job_id = f"j-{self.calls['SubmitJob']}"
        return job_pb.SubmitJobResponse(job=pb.Job(job_id=job_id, tenant=tenant))

    @translate_errors
    async def CancelJob(
        self, request: job_pb.CancelJobRequest, context: Ctx
    ) -> job_pb.CancelJobResponse:
        self.calls["CancelJob"] += 1
        return job_pb.CancelJobResponse(job=pb.Job(job_id=request.job_id))

    @translate_errors
    async def PlanJob(self, request: job_pb.PlanJobRequest, context: Ctx) -> job_pb.PlanJobResponse:
        self.calls["PlanJob"] += 1
        await asyncio.Event().wait()  # a handler that never finishes: only a deadline ends it
        return job_pb.PlanJobResponse()

    @translate_errors
    async def WatchJob(self, request: job_pb.WatchJobRequest, context: Ctx) -> AsyncIterator[Any]:
        self.calls["WatchJob"] += 1
        tenant = require_principal().tenant
        for sequence in (1, 2):
            yield job_pb.WatchJobResponse(event=pb.JobEvent(sequence=sequence, job_id=tenant))

    @translate_errors
    async def WatchJobs(self, request: job_pb.WatchJobsRequest, context: Ctx) -> AsyncIterator[Any]:
        self.calls["WatchJobs"] += 1
        tenant = require_principal().tenant
        yield job_pb.WatchJobsResponse(event=pb.JobEvent(sequence=1, job_id=tenant))
        await asyncio.Event().wait()  # an open watch: only the client or the broker ends it


class FederationService(fed_grpc.FederationServiceServicer):  # type: ignore[misc]
    """DrainSite (operator-only) echoes the site id."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    @translate_errors
    async def DrainSite(
        self, request: fed_pb.DrainSiteRequest, context: Ctx
    ) -> fed_pb.DrainSiteResponse:
        self.calls["DrainSite"] += 1
        return fed_pb.DrainSiteResponse(site=pb.Site(site_id=request.site_id))

    @translate_errors
    async def ListSites(
        self, request: fed_pb.ListSitesRequest, context: Ctx
    ) -> fed_pb.ListSitesResponse:
        self.calls["ListSites"] += 1
        return fed_pb.ListSitesResponse()


class RebalanceService(reb_grpc.RebalanceServiceServicer):  # type: ignore[misc]
    """ApplyRebalance (operator-only) returns a run."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    @translate_errors
    async def ApplyRebalance(
        self, request: reb_pb.ApplyRebalanceRequest, context: Ctx
    ) -> reb_pb.ApplyRebalanceResponse:
        self.calls["ApplyRebalance"] += 1
        return reb_pb.ApplyRebalanceResponse(run=reb_pb.RebalanceRun(run_id="r-1"))


class SiteService(site_grpc.SiteServiceServicer):  # type: ignore[misc]
    """Connect checks the hello against the certificate and echoes the verified site id in the
    welcome's broker_epoch, then holds the stream until the agent closes it."""

    def __init__(self, calls: Calls, *, require_certificate: bool = True) -> None:
        self.calls = calls
        self.require_certificate = require_certificate
        self.seen_sites: list[str | None] = []

    @translate_errors
    async def Connect(self, request_iterator: Any, context: Ctx) -> AsyncIterator[Any]:
        self.calls["Connect"] += 1
        self.seen_sites.append(current_site())
        first = await anext(aiter(request_iterator))
        site = check_hello_site(
            first.hello.site_id, context, require_certificate=self.require_certificate
        )
        assert current_principal() is None
        yield site_pb.ConnectResponse(welcome=site_pb.Welcome(broker_epoch=site))
        async for _ in request_iterator:
            pass
