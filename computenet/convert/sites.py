"""Sites, their capacity and the topology's regions and links on the wire, to and from the domain.

Regions and links convert to and from the topology package's own models; that package is loaded
only when one is decoded, so the SDK does not pay for it on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from computenet.convert.enums import site_status_from_proto, site_status_to_proto
from computenet.types import CapacityReport, PoolCapacity, SiteId, SiteInfo, SiteStatus
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import site_service_pb2 as site_pb
from computenet.v1 import types_pb2 as pb

if TYPE_CHECKING:
    from topology import Link, UserRegion


def pool_to_proto(pool: PoolCapacity) -> pb.PoolCapacity:
    """Domain pool to wire pool."""
    return pb.PoolCapacity(
        model=pool.model,
        total=pool.total,
        allocatable=pool.allocatable,
        in_use=pool.in_use,
        federation_in_use=pool.federation_in_use,
        held=pool.held,
        free=pool.free,
        nodes=pool.nodes,
        cards_per_node=pool.cards_per_node,
    )


def pool_from_proto(msg: pb.PoolCapacity) -> PoolCapacity:
    """Wire pool to domain pool."""
    return PoolCapacity(
        model=msg.model,
        total=msg.total,
        allocatable=msg.allocatable,
        in_use=msg.in_use,
        federation_in_use=msg.federation_in_use,
        held=msg.held,
        nodes=msg.nodes,
        cards_per_node=msg.cards_per_node,
    )


def site_to_proto(site: SiteInfo) -> pb.Site:
    """Domain site to wire site."""
    return pb.Site(
        site_id=site.site_id,
        name=site.name,
        province=site.province,
        side=site.side,
        status=site_status_to_proto(site.status),
        pools=[pool_to_proto(p) for p in site.pools],
        cpu_cores=site.cpu_cores,
        memory_gb=site.memory_gb,
        last_report_unix_ms=site.last_report_unix_ms,
        running_jobs=site.running_jobs,
        executor=site.executor,
        agent_version=site.agent_version,
        capacity_stale=site.capacity_stale,
        capacity_error=site.capacity_error,
        capacity_unix_ms=site.capacity_unix_ms,
    )


def site_from_proto(msg: pb.Site) -> SiteInfo:
    """Wire site to domain site; a status this build does not know reads as offline."""
    return SiteInfo(
        site_id=SiteId(msg.site_id),
        name=msg.name,
        province=msg.province,
        side=msg.side,
        status=site_status_from_proto(msg.status) or SiteStatus.OFFLINE,
        pools=tuple(pool_from_proto(p) for p in msg.pools),
        cpu_cores=msg.cpu_cores,
        memory_gb=msg.memory_gb,
        last_report_unix_ms=msg.last_report_unix_ms,
        running_jobs=msg.running_jobs,
        executor=msg.executor,
        agent_version=msg.agent_version,
        capacity_stale=msg.capacity_stale,
        capacity_error=msg.capacity_error,
        capacity_unix_ms=msg.capacity_unix_ms,
    )


def capacity_report_to_proto(report: CapacityReport) -> site_pb.CapacityReport:
    """Domain capacity report to the wire report (which doubles as the agent's heartbeat)."""
    return site_pb.CapacityReport(
        pools=[pool_to_proto(p) for p in report.pools],
        cpu_cores=report.cpu_cores,
        cpu_cores_free=report.cpu_cores_free,
        memory_gb=report.memory_gb,
        memory_gb_free=report.memory_gb_free,
        price_cny_per_kwh=report.price_cny_per_kwh,
        carbon_kg_per_kwh=report.carbon_kg_per_kwh,
        federation_cpu_cores=report.federation_cpu_cores,
        federation_memory_gb=report.federation_memory_gb,
    )


def capacity_report_from_proto(msg: site_pb.CapacityReport) -> CapacityReport:
    """Wire capacity report to the domain report."""
    return CapacityReport(
        pools=tuple(pool_from_proto(p) for p in msg.pools),
        cpu_cores=msg.cpu_cores,
        cpu_cores_free=msg.cpu_cores_free,
        memory_gb=msg.memory_gb,
        memory_gb_free=msg.memory_gb_free,
        price_cny_per_kwh=msg.price_cny_per_kwh,
        carbon_kg_per_kwh=msg.carbon_kg_per_kwh,
        federation_cpu_cores=msg.federation_cpu_cores,
        federation_memory_gb=msg.federation_memory_gb,
    )


def user_region_to_proto(region: UserRegion) -> fed_pb.UserRegion:
    """Topology user region to the wire (its display name is not sent)."""
    return fed_pb.UserRegion(
        region_id=region.id,
        lat_deg=region.lat,
        lon_deg=region.lon,
        demand_weight=region.demand_weight,
    )


def user_region_from_proto(msg: fed_pb.UserRegion) -> UserRegion:
    """Wire user region to the topology's model; raises ValueError if it is not a valid one."""
    from topology import UserRegion

    return UserRegion(
        id=msg.region_id, lat=msg.lat_deg, lon=msg.lon_deg, demand_weight=msg.demand_weight
    )


def link_to_proto(link: Link) -> fed_pb.Link:
    """Topology link to the wire."""
    return fed_pb.Link(
        a=link.a,
        b=link.b,
        rtt_ms=link.rtt_ms,
        bandwidth_gbps=link.bandwidth_gbps,
        cny_per_gb=link.cny_per_gb,
    )


def link_from_proto(msg: fed_pb.Link) -> Link:
    """Wire link to the topology's model; raises ValueError if it is not a valid one."""
    from topology import Link

    return Link(
        a=msg.a,
        b=msg.b,
        rtt_ms=msg.rtt_ms,
        bandwidth_gbps=msg.bandwidth_gbps,
        cny_per_gb=msg.cny_per_gb,
    )
