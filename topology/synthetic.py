"""Seeded random topologies shaped like the Chinese federation, for tests and benchmarks."""

from __future__ import annotations

import math

import numpy as np

from topology.graph import Topology
from topology.model import AcceleratorPool, Link, RegionId, Side, Site, SiteId, UserRegion
from topology.pricing import expand_bands

# lon/lat box around mainland China; sites west of 110°E count as western (energy) side
_LON = (98.0, 122.0)
_LAT = (22.0, 42.0)
_WEST_OF_LON = 110.0
_CATALOGUE = (  # model, memory_gb, tflops_bf16, watts (figures as in data/china.yaml)
    ("a800", 80.0, 312.0, 400.0),
    ("h800", 80.0, 989.0, 700.0),
    ("h20", 96.0, 148.0, 400.0),
    ("910b", 64.0, 320.0, 350.0),
    ("910c", 128.0, 780.0, 700.0),
)
_EAST_BANDS = ((0, 8, 0.4), (10, 12, 1.6), (14, 19, 1.6))
_WEST_BANDS = ((0, 8, 0.5), (10, 12, 1.5), (14, 19, 1.5))
_BANDWIDTHS_GBPS = (10.0, 40.0, 100.0, 100.0, 400.0)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a 6371 km sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def model_rtt_ms(km: float, ip_multiplier: float = 1.5) -> float:
    """RTT from distance with the research latency model: 2 x mult x (km x 1.6 / 200 + 0.4)."""
    return 2.0 * ip_multiplier * (km * 1.6 / 200.0 + 0.4)


def synthetic_parts(
    n_sites: int, n_regions: int, n_links: int, seed: int
) -> tuple[list[Site], list[UserRegion], list[Link]]:
    """Records of a connected random topology; at least `n_sites + n_regions - 1` links are made."""
    if n_sites < 1 or n_regions < 0:
        raise ValueError("need n_sites >= 1 and n_regions >= 0")
    rng = np.random.default_rng(seed)
    n = n_sites + n_regions
    lon = rng.uniform(*_LON, size=n)
    lat = rng.uniform(*_LAT, size=n)
    sites = [_site(rng, i, float(lat[i]), float(lon[i])) for i in range(n_sites)]
    regions = [
        UserRegion(
            id=RegionId(f"r{j:04d}"),
            lat=float(lat[n_sites + j]),
            lon=float(lon[n_sites + j]),
            demand_weight=float(rng.uniform(0.1, 1.0)),
        )
        for j in range(n_regions)
    ]
    ids = [s.id for s in sites] + [r.id for r in regions]
    km = _distance_matrix(lat, lon)
    pairs = _pairs(rng, km, n_sites, n, max(n_links, n - 1))
    links = [_link(rng, ids[i], ids[j], float(km[i, j])) for i, j in pairs]
    return sites, regions, links


def synthetic_topology(n_sites: int, n_regions: int, n_links: int, seed: int) -> Topology:
    """A connected random topology (same seed, same topology)."""
    return Topology(*synthetic_parts(n_sites, n_regions, n_links, seed))


def _site(rng: np.random.Generator, i: int, lat: float, lon: float) -> Site:
    side: Side = "west" if lon < _WEST_OF_LON else "east"
    flat = float(rng.uniform(0.30, 0.45) if side == "west" else rng.uniform(0.50, 0.75))
    chosen = rng.choice(len(_CATALOGUE), size=int(rng.integers(1, 3)), replace=False)
    pools = tuple(
        AcceleratorPool(
            model=_CATALOGUE[k][0],
            count=int(rng.integers(1, 33)) * 64,
            memory_gb=_CATALOGUE[k][1],
            tflops_bf16=_CATALOGUE[k][2],
            watts=_CATALOGUE[k][3],
        )
        for k in sorted(chosen.tolist())
    )
    cards = sum(p.count for p in pools)
    return Site(
        id=SiteId(f"s{i:04d}"),
        name=f"Synthetic site {i}",
        province="synthetic",
        hub=f"hub{i % 8}",
        lat=lat,
        lon=lon,
        side=side,
        kind=("hpc", "cloud", "intelligent")[int(rng.integers(0, 3))],
        cpu_cores=cards * 16,
        memory_gb=float(cards * 256),
        interconnect_gbps=float(rng.choice([200.0, 400.0])),
        pue=float(rng.uniform(1.1, 1.3)),
        carbon_kg_per_kwh=float(rng.uniform(0.1, 0.8)),
        green_share=float(rng.uniform(0.0, 0.8)),
        mtbf_hours=float(rng.uniform(200.0, 1000.0)),
        pools=pools,
        hourly_price_cny_per_kwh=expand_bands(flat, _WEST_BANDS if side == "west" else _EAST_BANDS),
    )


def _link(rng: np.random.Generator, a: str, b: str, km: float) -> Link:
    return Link(
        a=a,
        b=b,
        rtt_ms=round(model_rtt_ms(km) * float(rng.uniform(0.9, 1.3)), 3),
        bandwidth_gbps=float(rng.choice(_BANDWIDTHS_GBPS)),
        cny_per_gb=round(float(rng.uniform(0.01, 0.1)), 4),
    )


def _distance_matrix(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    p, lam = np.radians(lat), np.radians(lon)
    dp = p[:, None] - p[None, :]
    dl = lam[:, None] - lam[None, :]
    h = np.sin(dp / 2) ** 2 + np.cos(p)[:, None] * np.cos(p)[None, :] * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _pairs(
    rng: np.random.Generator, km: np.ndarray, n_sites: int, n: int, n_links: int
) -> list[tuple[int, int]]:
    """A spanning tree over sites, each region tied to a near site, then extra near site pairs."""
    chosen: set[tuple[int, int]] = set()
    order: list[tuple[int, int]] = []

    def add(i: int, j: int) -> None:
        pair = (min(i, j), max(i, j))
        if i != j and pair not in chosen:
            chosen.add(pair)
            order.append(pair)

    for i in range(1, n_sites):
        sample = rng.choice(i, size=min(i, 8), replace=False)
        add(i, int(sample[np.argmin(km[i, sample])]))
    for r in range(n_sites, n):
        add(r, int(np.argmin(km[r, :n_sites])))
    capacity = n_sites * (n_sites - 1) // 2 + (n - n_sites) * n_sites
    target = min(n_links, capacity)
    near = np.argsort(km[:, :n_sites], axis=1)[:, : min(n_sites, 24)]
    attempts = 0
    while len(order) < target and attempts < 50 * target:
        attempts += 1
        i = int(rng.integers(0, n))
        add(i, int(near[i, int(rng.integers(0, near.shape[1]))]))
    return order
