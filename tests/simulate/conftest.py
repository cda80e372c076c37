"""Fixtures for the simulator tests: a tiny hand-built topology and the shared-data guard."""

from __future__ import annotations

import pytest

from broker.simulate import WorkloadError, data_dir
from topology import AcceleratorPool, Link, Site, Topology, UserRegion


def _site(site_id: str, side: str, price: float, pools: dict[str, int], lon: float) -> Site:
    return Site(
        id=site_id,
        name=site_id,
        province=site_id,
        hub=site_id,
        lat=30.0,
        lon=lon,
        side=side,
        kind="cloud",
        cpu_cores=1024,
        memory_gb=16384.0,
        interconnect_gbps=100.0,
        pue=1.2,
        carbon_kg_per_kwh=0.5,
        green_share=0.0,
        mtbf_hours=720.0,
        pools=tuple(
            AcceleratorPool(model=m, count=n, memory_gb=80, tflops_bf16=300, watts=400)
            for m, n in pools.items()
        ),
        hourly_price_cny_per_kwh=(price,) * 24,
    )


@pytest.fixture(scope="session")
def tiny() -> Topology:
    """Three sites on a line: `near` (dear, small) next to the users, `mid`, `far` (cheapest)."""
    sites = [
        _site("near", "east", 0.8, {"a100": 4}, 110.0),
        _site("mid", "east", 0.6, {"a100": 8, "h20": 2}, 105.0),
        _site("far", "west", 0.3, {"a100": 8}, 100.0),
    ]
    regions = [UserRegion(id="city", lat=30.0, lon=111.0, demand_weight=1.0)]
    links = [
        Link(a="city", b="near", rtt_ms=2, bandwidth_gbps=10, cny_per_gb=0.01),
        Link(a="near", b="mid", rtt_ms=10, bandwidth_gbps=100, cny_per_gb=0.01),
        Link(a="mid", b="far", rtt_ms=20, bandwidth_gbps=100, cny_per_gb=0.01),
    ]
    return Topology(sites, regions, links)


@pytest.fixture(scope="session")
def traces_present() -> None:
    """Skip unless the shared traces are readable (they are in CI)."""
    try:
        data_dir()
    except WorkloadError as exc:
        pytest.skip(f"shared traces not available locally: {exc}")
