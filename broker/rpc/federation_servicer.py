"""FederationService over gRPC: sites with live status, the topology, and draining."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace

import grpc

from broker.control.capacity import SiteHolds, holds_by_site, pool_views
from broker.rpc.errors import translate_errors
from broker.sites.registry import SiteRegistry, StatusChange, report_to_json
from broker.sites.sessions import OutDrain, SessionTable
from broker.store.protocol import Fence, FenceLostError, SiteRecord
from broker.writer import StoreWriter
from computenet import convert
from computenet.errors import SiteNotFoundError, UnavailableError, UnimplementedError
from computenet.types import ACTIVE_STATES, SiteId, SiteInfo
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
        fence: Fence | None = None,
    ) -> None:
        """With a `fence` (the leader's epoch), drains are saved only while it holds."""
        self._fence = fence
        self._registry = registry
        self._sessions = sessions
        self._writer = writer
        self._topology = topology
        self._topology_yaml = topology_yaml
        self._on_status = on_status

    async def _views(self) -> _Views:
        store = self._writer.store
        active = await self._writer.read(lambda: store.jobs_in_states(frozenset(ACTIVE_STATES)))
        holds = await self._writer.read(store.holds)
        return _Views(Counter(j.site for j in active if j.site), holds_by_site(holds), self)

    def info(self, site_id: SiteId, running: int, held: SiteHolds | None) -> SiteInfo:
        """The public view of a site, its pools showing what the ledger holds and what is free."""
        info = self._registry.info(site_id, running)
        return replace(info, pools=pool_views(info.pools, held))

    def _require(self, site_id: str) -> SiteId:
        if site_id not in self._registry:
            raise SiteNotFoundError(f"site {site_id!r} is not in the topology")
        return SiteId(site_id)

    @translate_errors
    async def ListSites(
        self, request: pb.ListSitesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSitesResponse:
        wanted = convert.site_status_from_proto(request.status)
        views = await self._views()
        sites = [
            convert.site_to_proto(views[e.site_id])
            for e in self._registry.entries()
            if wanted is None or e.status == wanted
        ]
        return pb.ListSitesResponse(sites=sites)

    @translate_errors
    async def GetSite(
        self, request: pb.GetSiteRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSiteResponse:
        site_id = self._require(request.site_id)
        views = await self._views()
        return pb.GetSiteResponse(site=convert.site_to_proto(views[site_id]))

    @translate_errors
    async def GetTopology(
        self, request: pb.GetTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTopologyResponse:
        views = await self._views()
        return pb.GetTopologyResponse(
            sites=[convert.site_to_proto(views[e.site_id]) for e in self._registry.entries()],
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
        record = SiteRecord(
            site_id=site_id,
            status=entry.status,
            last_report_unix_ms=entry.last_report_unix_ms,
            report_json=report_to_json(entry.report),
            executor=entry.executor,
            agent_version=entry.agent_version,
            agent_epoch=entry.agent_epoch,
            drained=request.drain,
        )
        try:
            await self._writer.write(
                lambda: self._writer.store.save_site(record, fence=self._fence)
            )
        except FenceLostError:
            raise UnavailableError("this broker replica no longer leads; retry", 0.5) from None
        session = self._sessions.get(site_id)
        if session is not None:
            session.send(OutDrain(session.next_id(), request.drain))
        if change is not None:
            await self._on_status([change])
        views = await self._views()
        return pb.DrainSiteResponse(site=convert.site_to_proto(views[site_id]))

    async def GetClusterStatus(
        self, request: pb.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetClusterStatusResponse:
        raise UnimplementedError("cluster status is answered by every replica's gateway")


class _Views:
    """Per-request site views: active job counts and ledger holds, read once."""

    def __init__(
        self, running: Counter[str], held: dict[str, SiteHolds], servicer: FederationServicer
    ) -> None:
        self._running = running
        self._held = held
        self._servicer = servicer

    def __getitem__(self, site_id: str) -> SiteInfo:
        sid = SiteId(site_id)
        return self._servicer.info(sid, self._running[site_id], self._held.get(site_id))
