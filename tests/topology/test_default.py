"""The built-in China topology: required sites and regions, latency and price facts, provenance."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources
from statistics import mean

import pytest
import yaml

from topology import default_topology, hour_of_day_cst
from topology.errors import UnknownNodeError

SITES = {
    "zhangjiakou",
    "yangtze-demo",
    "wuhu",
    "shaoguan",
    "tianfu",
    "chongqing",
    "guian",
    "horinger",
    "qingyang",
    "zhongwei",
}


def test_has_the_ten_clusters_and_the_required_regions() -> None:
    topo = default_topology()
    assert set(topo.site_ids) == SITES
    assert {s.id for s in topo.west_sites} == {"guian", "horinger", "qingyang", "zhongwei"}
    assert {"beijing", "shanghai", "guangzhou", "shenzhen", "chengdu"} <= set(topo.region_ids)
    assert len(topo.regions) >= 15
    assert sum(r.demand_weight for r in topo.regions) == pytest.approx(1.0)
    assert default_topology() is topo


def test_latency_facts() -> None:
    topo = default_topology()
    assert topo.rtt_ms("beijing", "zhangjiakou") < topo.rtt_ms("beijing", "guian")
    assert topo.rtt_ms("shanghai", "wuhu") < topo.rtt_ms("shanghai", "zhongwei")
    assert topo.nearest_sites("shanghai", 1)[0][1] < 15
    for city in ("guangzhou", "shenzhen"):
        assert topo.nearest_sites(city, 1)[0][0] == "shaoguan"
        assert topo.rtt_ms(city, "shaoguan") < 15


def test_every_region_reaches_every_site() -> None:
    topo = default_topology()
    for region in topo.region_ids:
        for site in topo.site_ids:
            assert topo.rtt_ms(region, site) < 80
            assert topo.bottleneck_gbps(region, site) > 0


def test_western_power_is_cheaper() -> None:
    topo = default_topology()
    west = [topo.mean_price_cny_per_kwh(s.id) for s in topo.west_sites]
    east = [topo.mean_price_cny_per_kwh(s.id) for s in topo.east_sites]
    assert mean(west) < mean(east)
    assert max(west) < min(east)


def test_prices_follow_time_of_use_in_china_standard_time() -> None:
    topo = default_topology()
    night = hour_of_day_cst(datetime(2025, 1, 1, 18, 30, tzinfo=UTC))  # 02:30 CST
    assert night == pytest.approx(2.5)
    afternoon = hour_of_day_cst(datetime(2025, 1, 1, 7, 0, tzinfo=UTC))  # 15:00 CST
    assert topo.price_cny_per_kwh("zhangjiakou", night) < topo.price_cny_per_kwh(
        "zhangjiakou", afternoon
    )
    with pytest.raises(ValueError):
        hour_of_day_cst(datetime(2025, 1, 1))


def test_carbon_and_queries_on_named_sites() -> None:
    topo = default_topology()
    horinger = topo.site("horinger")
    assert topo.carbon_kg("horinger", 1000) == pytest.approx(1000 * 0.6849 * (1 - 0.8457))
    assert horinger.pool("910b") is not None
    assert topo.weighted_rtt_ms("shaoguan", {"guangzhou": 1, "shenzhen": 1}) == pytest.approx(7.5)
    with pytest.raises(UnknownNodeError):
        topo.site("beijing")
    with pytest.raises(UnknownNodeError):
        topo.rtt_ms("beijing", "atlantis")


def test_snapshot_is_read_only() -> None:
    topo = default_topology()
    site = topo.sites[0]
    with pytest.raises(ValueError):
        site.pue = 2.0  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017 - networkx raises NetworkXError on frozen graphs
        topo.graph.add_node("x")
    assert isinstance(topo.sites, tuple)


def test_every_number_in_the_data_file_has_a_basis() -> None:
    doc = yaml.safe_load((resources.files("topology") / "data" / "china.yaml").read_text("utf-8"))
    pattern = re.compile(r"^[SDM]:\S+")
    numeric = {
        "lat",
        "lon",
        "cpu_cores",
        "memory_gb",
        "interconnect_gbps",
        "pue",
        "carbon_kg_per_kwh",
        "green_share",
        "mtbf_hours",
        "pools",
        "tariff",
        "demand_weight",
        "rtt_ms",
        "bandwidth_gbps",
        "cny_per_gb",
        "tflops_bf16",
        "watts",
        "side",
        "kind",
    }
    entries = [*doc["sites"], *doc["user_regions"], *doc["links"], *doc["accelerators"].values()]
    for entry in entries:
        wanted = numeric & set(entry)
        assert wanted <= set(entry["provenance"]), entry
        assert all(pattern.match(entry["provenance"][field]) for field in wanted)
