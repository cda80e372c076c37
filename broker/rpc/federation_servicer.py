"""FederationService over gRPC: sites with live status, the topology, and draining."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from broker.rpc.errors import translate_errors
from broker.sites.federation import Federation
from broker.sites.registry import SiteRegistry, StatusChange
from broker.sites.sessions import SessionTable
from broker.store.protocol import Fence
from broker.writer import StoreWriter
from computenet import convert
from computenet.errors import UnimplementedError
from computenet.v1 import federation_service_pb2 as pb
from computenet.v1 import federation_service_pb2_grpc as pb_grpc
from topology import Topology


class FederationServicer(pb_grpc.FederationServiceServicer):
    """gRPC edge of the federation view; the domain work is broker.sites.federation's."""

    def __init__(
        self,
        *,
        registry: SiteRegistry,
        sessions: SessionTable,
        writer: StoreWriter,
        topology: Topology,
        topology_yaml: str,
        on_status: Callable[[list[StatusChange]], Awaitable[None]],
        fence: Fence | None = None,
    ) -> None:
        """With a `fence` (the leader's epoch), drains are saved only while it holds."""
        self.federation = Federation(
            registry=registry, sessions=sessions, writer=writer, on_status=on_status, fence=fence
        )
        self._topology = topology
        self._topology_yaml = topology_yaml

    @translate_errors
    async def ListSites(
        self, request: pb.ListSitesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSitesResponse:
        wanted = convert.site_status_from_proto(request.status)
        views = await self.federation.views()
        sites = [convert.site_to_proto(views[s]) for s in self.federation.site_ids(wanted)]
        return pb.ListSitesResponse(sites=sites)

    @translate_errors
    async def GetSite(
        self, request: pb.GetSiteRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSiteResponse:
        site_id = self.federation.require(request.site_id)
        views = await self.federation.views()
        return pb.GetSiteResponse(site=convert.site_to_proto(views[site_id]))

    @translate_errors
    async def GetTopology(
        self, request: pb.GetTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTopologyResponse:
        views = await self.federation.views()
        return pb.GetTopologyResponse(
            sites=[convert.site_to_proto(views[s]) for s in self.federation.site_ids()],
            user_regions=[convert.user_region_to_proto(r) for r in self._topology.regions],
            links=[convert.link_to_proto(link) for link in self._topology.links],
            document_yaml=self._topology_yaml,
        )

    @translate_errors
    async def DrainSite(
        self, request: pb.DrainSiteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DrainSiteResponse:
        site = await self.federation.drain(request.site_id, request.drain)
        return pb.DrainSiteResponse(site=convert.site_to_proto(site))

    async def GetClusterStatus(
        self, request: pb.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetClusterStatusResponse:
        raise UnimplementedError("cluster status is answered by every replica's gateway")
