"""FederationService over gRPC: sites with live status, the topology, and draining."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import grpc

from broker.registry import SiteRegistry, StatusChange, report_to_json
from broker.rpc.errors import translate_errors
from broker.sessions import OutDrain, SessionTable
from broker.store.protocol import SiteRecord
from broker.writer import StoreWriter
from computenet import convert
from computenet.errors import SiteNotFoundError
from computenet.types import ACTIVE_STATES, SiteId
from computenet.v1 import federation_service_pb2 as pb
from computenet.v1 import federation_service_pb2_grpc as pb_grpc
from topology import Topology


class FederationServicer(pb_grpc.FederationServiceServicer):
    """gRPC edge of the federation view."""

    def __init__(
        self,
        *,
        registry: SiteRegistry,
        sessions: SessionTable,
        writer: StoreWriter,
        topology: Topology,
        topology_yaml: str,
        on_status: Callable[[list[StatusChange]], Awaitable[None]],
    ) -> None:
        self._registry = registry
        self._sessions = sessions
        self._writer = writer
        self._topology = topology
        self._topology_yaml = topology_yaml
        self._on_status = on_status

    async def _running(self) -> Counter[str]:
        active = await self._writer.read(
            lambda: self._writer.store.jobs_in_states(frozenset(ACTIVE_STATES))
        )
        return Counter(j.site for j in active if j.site)

    def _require(self, site_id: str) -> SiteId:
        if site_id not in self._registry:
            raise SiteNotFoundError(f"site {site_id!r} is not in the topology")
        return SiteId(site_id)

    @translate_errors
    async def ListSites(
        self, request: pb.ListSitesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSitesResponse:
        wanted = convert.site_status_from_proto(request.status)
        running = await self._running()
        sites = [
            convert.site_to_proto(self._registry.info(e.site_id, running[e.site_id]))
            for e in self._registry.entries()
            if wanted is None or e.status == wanted
        ]
        return pb.ListSitesResponse(sites=sites)

    @translate_errors
    async def GetSite(
        self, request: pb.GetSiteRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSiteResponse:
        site_id = self._require(request.site_id)
        running = await self._running()
        return pb.GetSiteResponse(
            site=convert.site_to_proto(self._registry.info(site_id, running[site_id]))
        )

    @translate_errors
    async def GetTopology(
        self, request: pb.GetTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTopologyResponse:
        running = await self._running()
        return pb.GetTopologyResponse(
            sites=[
                convert.site_to_proto(self._registry.info(e.site_id, running[e.site_id]))
                for e in self._registry.entries()
            ],
            user_regions=[convert.user_region_to_proto(r) for r in self._topology.regions],
            links=[convert.link_to_proto(link) for link in self._topology.links],
            document_yaml=self._topology_yaml,
        )

    @translate_errors
    async def DrainSite(
        self, request: pb.DrainSiteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DrainSiteResponse:
        site_id = self._require(request.site_id)
        change = self._registry.set_drained(site_id, request.drain)
        entry = self._registry.get(site_id)
        await self._writer.write(
            lambda: self._writer.store.save_site(
                SiteRecord(
                    site_id=site_id,
                    status=entry.status,
                    last_report_unix_ms=entry.last_report_unix_ms,
                    report_json=report_to_json(entry.report),
                    executor=entry.executor,
                    agent_version=entry.agent_version,
                    agent_epoch=entry.agent_epoch,
                    drained=request.drain,
                )
            )
        )
        session = self._sessions.get(site_id)
        if session is not None:
            session.send(OutDrain(session.next_id(), request.drain))
        if change is not None:
            await self._on_status([change])
        running = await self._running()
        return pb.DrainSiteResponse(
            site=convert.site_to_proto(self._registry.info(site_id, running[site_id]))
        )
