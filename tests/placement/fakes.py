"""Small hand-built topologies for placement unit tests."""

from __future__ import annotations

from topology import AcceleratorPool, Link, SiteId, Topology, UserRegion
from topology.model import RegionId, Site


def site(
    site_id: str,
    *,
    side: str = "east",
    province: str = "P",
    price: float = 0.5,
    pools: tuple[tuple[str, int, float], ...] = (("h800", 16, 700.0),),
    carbon: float = 0.6,
    green: float = 0.0,
    mtbf: float = 500.0,
) -> Site:
    """A site with a flat power price and the given (model, count, watts) pools."""
    cards = sum(count for _, count, _ in pools)
    return Site(
        id=SiteId(site_id),
        name=site_id,
        province=province,
        hub="hub",
        lat=30.0,
        lon=110.0,
        side=side,  # type: ignore[arg-type]
        kind="cloud",
        cpu_cores=max(cards, 1) * 16,
        memory_gb=max(cards, 1) * 256.0,
        interconnect_gbps=200.0,
        pue=1.2,
        carbon_kg_per_kwh=carbon,
        green_share=green,
        mtbf_hours=mtbf,
        pools=tuple(
            AcceleratorPool(model=m, count=c, memory_gb=80.0, tflops_bf16=300.0, watts=w)
            for m, c, w in pools
        ),
        hourly_price_cny_per_kwh=tuple([price] * 24),
    )


def small_topology() -> Topology:
    """east (near `city`, dear power), west (far, cheap and green), far (very far)."""
    sites = [
        site("east", price=0.7, carbon=0.6),
        site(
            "west",
            side="west",
            province="Q",
            price=0.3,
            green=0.5,
            pools=(("h800", 16, 700.0), ("910b", 8, 350.0)),
        ),
        site("far", side="west", province="R", price=0.3, pools=(("910b", 32, 350.0),)),
    ]
    regions = [UserRegion(id=RegionId("city"), lat=30.0, lon=120.0, demand_weight=1.0)]
    links = [
        Link(a="city", b="east", rtt_ms=4, bandwidth_gbps=10, cny_per_gb=0.05),
        Link(a="east", b="west", rtt_ms=20, bandwidth_gbps=100, cny_per_gb=0.05),
        Link(a="west", b="far", rtt_ms=30, bandwidth_gbps=100, cny_per_gb=0.05),
    ]
    return Topology(sites, regions, links)
