"""Property tests of route and energy queries on random synthetic topologies."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topology import Topology, synthetic_topology

REL = 1e-9


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    n_sites = draw(st.integers(min_value=1, max_value=9))
    n_regions = draw(st.integers(min_value=0, max_value=4))
    n_links = draw(st.integers(min_value=0, max_value=3 * (n_sites + n_regions)))
    return synthetic_topology(n_sites, n_regions, n_links, seed=draw(st.integers(0, 2**32 - 1)))


def _nodes(topo: Topology) -> list[str]:
    return [*topo.site_ids, *topo.region_ids]


@settings(max_examples=60, deadline=None)
@given(topologies())
def test_rtt_is_symmetric_and_obeys_the_triangle_inequality(topo: Topology) -> None:
    nodes = _nodes(topo)
    for a, b in itertools.product(nodes, repeat=2):
        assert topo.rtt_ms(a, b) == topo.rtt_ms(b, a)
        assert (topo.rtt_ms(a, b) == 0) == (a == b)
    for a, b, c in itertools.product(nodes, repeat=3):
        assert topo.rtt_ms(a, c) <= topo.rtt_ms(a, b) + topo.rtt_ms(b, c) + 1e-9


@settings(max_examples=60, deadline=None)
@given(topologies())
def test_path_rtt_matches_the_sum_of_its_links(topo: Topology) -> None:
    graph = topo.graph
    for a, b in itertools.product(_nodes(topo), repeat=2):
        path = topo.path(a, b)
        assert path[0] == a and path[-1] == b
        assert path == topo.path(b, a)[::-1]
        total = sum(graph.edges[u, v]["rtt_ms"] for u, v in itertools.pairwise(path))
        assert total == pytest.approx(topo.rtt_ms(a, b), rel=REL, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(topologies(), st.floats(min_value=0.001, max_value=1e5))
def test_transfers_never_beat_the_widest_path(topo: Topology, size_gb: float) -> None:
    graph = topo.graph
    for a, b in itertools.permutations(_nodes(topo), 2):
        bottleneck = topo.bottleneck_gbps(a, b)
        shortest = topo.path(a, b)
        shortest_min = min(
            graph.edges[u, v]["bandwidth_gbps"] for u, v in itertools.pairwise(shortest)
        )
        assert bottleneck >= shortest_min
        wide = topo.transfer_path(a, b)
        edges = list(itertools.pairwise(wide))
        assert bottleneck == min(graph.edges[u, v]["bandwidth_gbps"] for u, v in edges)
        hours = topo.transfer_hours(a, b, size_gb)
        assert hours >= size_gb * 8 / bottleneck / 3600 * (1 - REL)
        assert hours == pytest.approx(size_gb * 8 / bottleneck / 3600, rel=REL)
        cost = sum(graph.edges[u, v]["cny_per_gb"] for u, v in edges) * size_gb
        assert topo.transfer_cost_cny(a, b, size_gb) == pytest.approx(cost, rel=1e-9, abs=1e-9)
        assert bottleneck == topo.bottleneck_gbps(b, a)


@settings(max_examples=40, deadline=None)
@given(topologies(), st.floats(min_value=-48, max_value=72), st.floats(min_value=0, max_value=500))
def test_a_day_of_energy_costs_kwh_times_the_mean_price(
    topo: Topology, start_hour: float, power_kw: float
) -> None:
    for site in topo.site_ids:
        kwh = power_kw * 24
        cost = topo.energy_cost_cny(site, power_kw, start_hour, 24)
        assert cost == pytest.approx(kwh * topo.mean_price_cny_per_kwh(site), rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    topologies(),
    st.floats(min_value=0, max_value=24),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0.1, max_value=1000),
)
def test_energy_over_a_split_window_is_the_sum_of_its_parts(
    topo: Topology, start_hour: float, hours: float, split: float, power_kw: float
) -> None:
    first = hours * split
    for site in topo.site_ids:
        whole = topo.energy_cost_cny(site, power_kw, start_hour, hours)
        parts = topo.energy_cost_cny(site, power_kw, start_hour, first) + topo.energy_cost_cny(
            site, power_kw, start_hour + first, hours - first
        )
        assert whole == pytest.approx(parts, rel=1e-9, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(topologies())
def test_nearest_sites_are_sorted_and_match_rtt(topo: Topology) -> None:
    for node in _nodes(topo):
        ranked = topo.nearest_sites(node)
        assert [rtt for _, rtt in ranked] == sorted(rtt for _, rtt in ranked)
        assert all(topo.rtt_ms(node, site) == rtt for site, rtt in ranked)
        assert node not in {site for site, _ in ranked}
        assert len(ranked) == len(topo.sites) - (1 if node in topo.site_ids else 0)
        assert topo.nearest_sites(node, 2) == ranked[:2]


def test_synthetic_topologies_are_reproducible() -> None:
    one = synthetic_topology(20, 5, 60, seed=3)
    two = synthetic_topology(20, 5, 60, seed=3)
    assert one.sites == two.sites and one.links == two.links
    assert math.isfinite(one.rtt_ms("r0000", "r0004"))
