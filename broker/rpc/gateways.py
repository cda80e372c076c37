"""The services as every replica mounts them: leader-only calls go to the current term's
servicers, and on a follower end in NOT_LEADER naming where the leader is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc

from broker.rpc.errors import translate_errors
from broker.rpc.federation_servicer import FederationServicer
from broker.rpc.rebalance_servicer import RebalanceServicer
from broker.rpc.site_servicer import SiteServicer, preflight_response
from computenet import convert
from computenet.errors import NotLeaderError
from computenet.types import ClusterStatus
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import rebalance_service_pb2 as reb_pb
from computenet.v1 import rebalance_service_pb2_grpc as reb_grpc
from computenet.v1 import site_service_pb2 as site_pb
from computenet.v1 import site_service_pb2_grpc as site_grpc


@dataclass(frozen=True, slots=True)
class TermServicers:
    """The servicers of the current leadership term (they hold its registry and sessions)."""

    site: SiteServicer
    federation: FederationServicer
    rebalance: RebalanceServicer


class LeaderGate:
    """Finds the current term's servicers, or the NOT_LEADER error that says where to go."""

    def __init__(
        self,
        current: Callable[[], TermServicers | None],
        not_leader: Callable[[], NotLeaderError],
    ) -> None:
        self._current = current
        self.not_leader = not_leader

    def servicers(self) -> TermServicers:
        """The current term's servicers; NotLeaderError on a follower."""
        servicers = self._current()
        if servicers is None:
            raise self.not_leader()
        return servicers


class SiteGateway(site_grpc.SiteServiceServicer):
    """Agents' streams go to the leader only; any replica answers a preflight."""

    def __init__(self, gate: LeaderGate, site_known: Callable[[str], bool] = bool) -> None:
        self._gate = gate
        self._site_known = site_known

    @translate_errors
    async def Preflight(
        self, request: site_pb.PreflightRequest, context: grpc.aio.ServicerContext
    ) -> site_pb.PreflightResponse:
        """Any replica answers: it reads nothing of the term's state but the site list."""
        return preflight_response(request, self._site_known)

    @translate_errors
    async def Connect(
        self,
        request_iterator: AsyncIterator[site_pb.ConnectRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[site_pb.ConnectResponse]:
        servicer = self._gate.servicers().site
        async for response in servicer.Connect(request_iterator, context):
            yield response


class FederationGateway(fed_grpc.FederationServiceServicer):
    """Site views and drains are the leader's (its registry is live); cluster status is any
    replica's (it reads the database)."""

    def __init__(
        self, gate: LeaderGate, cluster_status: Callable[[], Awaitable[ClusterStatus]]
    ) -> None:
        self._gate = gate
        self._cluster_status = cluster_status

    @translate_errors
    async def ListSites(
        self, request: fed_pb.ListSitesRequest, context: grpc.aio.ServicerContext
    ) -> fed_pb.ListSitesResponse:
        return await self._gate.servicers().federation.ListSites(request, context)

    @translate_errors
    async def GetSite(
        self, request: fed_pb.GetSiteRequest, context: grpc.aio.ServicerContext
    ) -> fed_pb.GetSiteResponse:
        return await self._gate.servicers().federation.GetSite(request, context)

    @translate_errors
    async def GetTopology(
        self, request: fed_pb.GetTopologyRequest, context: grpc.aio.ServicerContext
    ) -> fed_pb.GetTopologyResponse:
        return await self._gate.servicers().federation.GetTopology(request, context)

    @translate_errors
    async def DrainSite(
        self, request: fed_pb.DrainSiteRequest, context: grpc.aio.ServicerContext
    ) -> fed_pb.DrainSiteResponse:
        return await self._gate.servicers().federation.DrainSite(request, context)

    @translate_errors
    async def GetClusterStatus(
        self, request: fed_pb.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> fed_pb.GetClusterStatusResponse:
        status = await self._cluster_status()
        return convert.cluster_status_to_proto(status)


class RebalanceGateway(reb_grpc.RebalanceServiceServicer):
    """Rebalancing runs on the leader."""

    def __init__(self, gate: LeaderGate) -> None:
        self._gate = gate

    @translate_errors
    async def PlanRebalance(
        self, request: reb_pb.PlanRebalanceRequest, context: grpc.aio.ServicerContext
    ) -> reb_pb.PlanRebalanceResponse:
        return await self._gate.servicers().rebalance.PlanRebalance(request, context)

    @translate_errors
    async def ApplyRebalance(
        self, request: reb_pb.ApplyRebalanceRequest, context: grpc.aio.ServicerContext
    ) -> reb_pb.ApplyRebalanceResponse:
        return await self._gate.servicers().rebalance.ApplyRebalance(request, context)

    @translate_errors
    async def ListRebalanceRuns(
        self, request: reb_pb.ListRebalanceRunsRequest, context: grpc.aio.ServicerContext
    ) -> reb_pb.ListRebalanceRunsResponse:
        return await self._gate.servicers().rebalance.ListRebalanceRuns(request, context)
