"""Pools of known node shape give jobs whole nodes: the gang filter, reasons, batch placement."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_placement import exact_optimum
from broker.placement import (
    FederationSnapshot,
    Policy,
    SiteCapacity,
    place,
    place_batch,
    place_greedy,
)
from broker.placement.batch import BatchResult
from broker.placement.demand import JobDemand
from broker.placement.filters import RequireGangFit
from broker.placement.shapes import footprint, footprints, nodes_needed
from broker.placement.tables import context_for
from computenet.spec import JobSpec, parse_spec
from computenet.types import SiteStatus
from tests.placement.fakes import site, small_topology
from tests.placement.test_batch import TOL, instances
from topology import Link, Topology, UserRegion
from topology.model import RegionId

NOW_UNIX_S = 1_750_000_000.0
Instance = tuple[FederationSnapshot, list[tuple[str, JobSpec]]]


def _spec(cards: int, *, model: str = "h800", gang: bool = True, **more: Any) -> JobSpec:
    return parse_spec(
        {
            "name": "job",
            "kind": "training",
            "command": ["run"],
            "duration_hours": 10,
            "gang": gang,
            "resources": {"accelerator": model, "count": cards, "cpu_cores": 1, "memory_gb": 1},
        }
        | more
    )


def _shaped(
    site_id: str,
    free: dict[str, int],
    shapes: dict[str, tuple[int, int]],
) -> SiteCapacity:
    """An active site with `free` cards and (nodes, cards per node) per shaped pool."""
    return SiteCapacity(
        site_id,
        SiteStatus.ACTIVE,
        free,
        cpu_free=4096,
        memory_gb_free=65536,
        cards_per_node={m: per_node for m, (_, per_node) in shapes.items()},
        nodes={m: nodes for m, (nodes, _) in shapes.items()},
    )


def _snapshot(topology: Topology, *sites: SiteCapacity) -> FederationSnapshot:
    return FederationSnapshot(topology, {s.site_id: s for s in sites}, NOW_UNIX_S)


def test_footprint_rounds_up_to_whole_nodes_only_where_the_shape_is_known() -> None:
    assert [nodes_needed(c, 4) for c in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert [footprint(c, 4) for c in (1, 4, 5, 9)] == [4, 4, 8, 12]
    assert [footprint(c, 0) for c in (1, 5)] == [1, 5]
    cards = np.asarray([1, 5, 5, 0])
    assert footprints(cards, np.asarray([4, 4, 0, 8])).tolist() == [4, 8, 5, 0]


# (nodes, cards per node) or None for an unknown shape, free cards reported, gang size,
# and the reason east is rejected for (None: it fits)
GANG_FIT_TABLE = [
    (None, 12, 12, None),
    (None, 12, 13, "gang of 13 h800 needs one pool, 12 free"),
    ((2, 8), 16, 12, None),
    ((2, 8), 16, 16, None),
    ((2, 8), 16, 17, "gang of 17 h800 needs 3 nodes of 8 cards, the pool has 2 nodes"),
    ((2, 8), 8, 12, "gang of 12 h800 needs 2 nodes of 8 cards, 1 of 2 wholly free"),
    ((2, 8), 8, 3, None),
    ((2, 8), 0, 1, "gang of 1 h800 needs 1 node of 8 cards, 0 of 2 wholly free"),
    # 14 free cards on 4-card nodes are 3 whole nodes at most
    ((4, 4), 14, 12, None),
    ((4, 4), 14, 13, "gang of 13 h800 needs 4 nodes of 4 cards, 3 of 4 wholly free"),
    ((1, 16), 16, 16, None),
    ((1, 16), 16, 17, "gang of 17 h800 needs 2 nodes of 16 cards, the pool has 1 node"),
    ((16, 1), 16, 16, None),
]


@pytest.mark.parametrize(("shape", "free", "cards", "reason"), GANG_FIT_TABLE)
def test_gang_filter_fits_whole_nodes(
    shape: tuple[int, int] | None, free: int, cards: int, reason: str | None
) -> None:
    topology = small_topology()
    east = _shaped("east", {"h800": free}, {"h800": shape} if shape else {})
    snapshot = _snapshot(topology, east)
    job = JobDemand.from_spec(_spec(cards))
    ctx = context_for(snapshot)
    gang_fit = RequireGangFit()
    opt = int(ctx.table.site_options[0][1])  # east's h800 pool
    assert ctx.table.opt_model[opt] == "h800"
    fits = bool(gang_fit.passes(job, ctx, np.asarray([opt]))[0])
    assert fits == (reason is None)
    verdict = {c.site: c for c in place(_spec(cards), snapshot, Policy.default()).candidates}
    assert verdict["east"].feasible == (reason is None)
    if reason is not None:
        assert gang_fit.reason(job, ctx, opt) == reason
        assert verdict["east"].reason == reason


def test_a_spread_job_counts_only_whole_free_nodes_of_each_pool() -> None:
    topology = small_topology()
    shapes = {"h800": (2, 8), "910b": (2, 4)}
    spec = _spec(20, model="", gang=False)
    loose = _shaped("west", {"h800": 12, "910b": 8}, {})
    assert place(spec, _snapshot(topology, loose), Policy.default()).chosen == "west"
    shaped = _shaped("west", {"h800": 12, "910b": 8}, shapes)  # 1 whole h800 node, 2 of 910b
    placement = place(spec, _snapshot(topology, shaped), Policy.default())
    assert placement.chosen is None
    assert {c.site: c.reason for c in placement.candidates}["west"] == (
        "needs 20 accelerators, 16 free"
    )


def _federation_of_a800(pools: dict[str, int]) -> Topology:
    sites = [site(s, pools=(("a800", n, 400.0),)) for s, n in pools.items()]
    regions = [UserRegion(id=RegionId("city"), lat=30.0, lon=120.0, demand_weight=1.0)]
    links = [
        Link(a="city", b=s, rtt_ms=5 + k, bandwidth_gbps=10, cny_per_gb=0.05)
        for k, s in enumerate(pools)
    ]
    return Topology(sites, regions, links)


def test_a_three_node_gang_is_never_placed_on_a_two_node_site_and_says_why() -> None:
    topology = _federation_of_a800({"two": 4, "four": 8})
    why = "gang of 6 a800 needs 3 nodes of 2 cards, the pool has 2 nodes"
    two = _shaped("two", {"a800": 4}, {"a800": (2, 2)})
    four = _shaped("four", {"a800": 8}, {"a800": (4, 2)})
    gang = _spec(6, model="a800")

    placement = place(gang, _snapshot(topology, two, four), Policy.default())
    assert placement.chosen == "four"
    assert {c.site: c.reason for c in placement.candidates}["two"] == why

    alone = _snapshot(topology, two)
    assert place(gang, alone, Policy.default()).chosen is None
    batch = place_batch([("g", gang)], alone, Policy.default())
    assert batch.assignment == {"g": None}
    assert f"two: {why}" in batch.reasons["g"]
    assert batch.reasons["g"].startswith("no feasible site (")


@pytest.mark.parametrize("how", ["batch", "greedy"])
def test_jobs_smaller_than_a_node_each_take_a_whole_node(how: str) -> None:
    """Four 4-card nodes hold four 3-card gangs, not five, whatever the solver."""
    topology = _federation_of_a800({"only": 16})
    snapshot = _snapshot(topology, _shaped("only", {"a800": 16}, {"a800": (4, 4)}))
    jobs = [(f"j{i}", _spec(3, model="a800")) for i in range(6)]
    if how == "batch":
        result = place_batch(jobs, snapshot, Policy.default())
    else:
        result = place_greedy(jobs, snapshot, Policy.default())
    placed = [j for j, s in result.assignment.items() if s is not None]
    assert len(placed) == 4
    for job_id, where in result.assignment.items():
        if where is None:
            assert result.reasons[job_id] == "no capacity left at any feasible site"
    unshaped = _snapshot(topology, _shaped("only", {"a800": 16}, {}))
    loose = place_batch(jobs, unshaped, Policy.default())
    assert sum(s is not None for s in loose.assignment.values()) == 5


def _check_nodes(
    snapshot: FederationSnapshot, jobs: list[tuple[str, JobSpec]], result: BatchResult
) -> None:
    """Per pool: whole nodes taken <= wholly free nodes (shaped), cards <= free (otherwise)."""
    taken: dict[tuple[str, str], int] = defaultdict(int)
    specs = dict(jobs)
    for job_id, where in result.assignment.items():
        if where is None or not specs[job_id].accelerators_total:
            continue
        model = result.models[job_id]
        per_node = snapshot.sites[where].cards_per_node.get(model, 0)
        cards = specs[job_id].accelerators_total
        taken[where, model] += nodes_needed(cards, per_node) if per_node else cards
    for (where, model), used in taken.items():
        cap = snapshot.sites[where]
        per_node = cap.cards_per_node.get(model, 0)
        free = cap.free.get(model, 0)
        assert used <= (free // per_node if per_node else free), (where, model)


@st.composite
def shaped_instances(draw: st.DrawFn) -> Instance:
    """Random batches on random federations, with most pools given a node shape."""
    snapshot, jobs = draw(instances())
    sites = {}
    for site_id, cap in snapshot.sites.items():
        pools = snapshot.topology.site(site_id).pools
        per_node = {p.model: draw(st.sampled_from([0, 1, 2, 4, 8, 16])) for p in pools}
        shaped = {m: c for m, c in per_node.items() if c}
        nodes = {p.model: max(1, p.count // shaped[p.model]) for p in pools if p.model in shaped}
        sites[site_id] = replace(cap, cards_per_node=shaped, nodes=nodes)
    return replace(snapshot, sites=sites), jobs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_instances())
def test_batch_never_takes_more_whole_nodes_than_are_free(instance: Instance) -> None:
    snapshot, jobs = instance
    policy = Policy.default()
    result = place_batch(jobs, snapshot, policy, time_budget_s=5.0)
    _check_nodes(snapshot, jobs, result)
    specs = dict(jobs)
    for job_id, where in result.assignment.items():
        if where is not None:
            verdicts = {c.site: c for c in place(specs[job_id], snapshot, policy).candidates}
            assert verdicts[where].feasible, verdicts[where].reason
    greedy = place_greedy(jobs, snapshot, policy)
    _check_nodes(snapshot, jobs, greedy)
    scale = max(1.0, abs(greedy.objective_cny))
    assert result.objective_cny <= greedy.objective_cny + TOL * scale
    assert result.objective_cny >= result.lp_bound_cny - TOL * scale


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_instances())
def test_lp_bound_with_node_shapes_is_below_the_exact_optimum(instance: Instance) -> None:
    snapshot, jobs = instance
    policy = Policy.default()
    result = place_batch(jobs, snapshot, policy, time_budget_s=5.0)
    optimum = exact_optimum(jobs, snapshot, policy)
    scale = max(1.0, abs(optimum))
    assert result.lp_bound_cny <= optimum + 1e-6 * scale
    assert result.objective_cny >= optimum - 1e-6 * scale
