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
from broker.placement.shapes import (
    fits_pool,
    footprint,
    footprints,
    multi_node,
    node_balance,
    nodes_needed,
    nodes_taken,
)
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
    whole: dict[str, int] | None = None,
) -> SiteCapacity:
    """An active site with `free` cards, (nodes, cards per node) per shaped pool and, if
    given, the pools' node balances (else as for a pool with no work)."""
    return SiteCapacity(
        site_id,
        SiteStatus.ACTIVE,
        free,
        cpu_free=4096,
        memory_gb_free=65536,
        cards_per_node={m: per_node for m, (_, per_node) in shapes.items()},
        nodes={m: nodes for m, (nodes, _) in shapes.items()},
        whole_nodes=whole or {},
    )


def _snapshot(topology: Topology, *sites: SiteCapacity) -> FederationSnapshot:
    return FederationSnapshot(topology, {s.site_id: s for s in sites}, NOW_UNIX_S)


def test_only_multi_node_jobs_round_up_to_whole_nodes() -> None:
    assert [nodes_needed(c, 4) for c in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert [footprint(c, 4) for c in (1, 4, 5, 9)] == [1, 4, 8, 12]
    assert [footprint(c, 0) for c in (1, 5)] == [1, 5]
    assert [nodes_taken(c, 4) for c in (0, 1, 4, 5, 9)] == [0, 1, 1, 2, 3]
    assert [nodes_taken(c, 0) for c in (1, 5)] == [0, 0]
    cards = np.asarray([1, 5, 5, 0])
    assert footprints(cards, np.asarray([4, 4, 0, 8])).tolist() == [1, 8, 5, 0]


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
    ((2, 8), 0, 1, "gang of 1 h800 needs one pool, 0 free"),
    ((2, 8), 1, 1, None),  # a job within a node needs cards, not a whole node
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
    east = _shaped("east", {"h800": 4}, {})  # too small, and not counted for west
    placement = place(spec, _snapshot(topology, shaped, east), Policy.default())
    assert placement.chosen is None
    assert {c.site: c.reason for c in placement.candidates}["west"] == (
        "needs 20 accelerators, 16 free"
    )
    # a job within a node of each pool counts their free cards: 3 + 3 on crowded nodes
    crowded = _snapshot(
        topology, _shaped("west", {"h800": 3, "910b": 3}, shapes, {"h800": -4, "910b": -4})
    )
    assert place(_spec(4, model="", gang=False), crowded, Policy.default()).chosen == "west"
    # beyond a 910b node, only h800 cards count
    wide = place(_spec(6, model="", gang=False), crowded, Policy.default())
    assert {c.site: c.reason for c in wide.candidates}["west"] == "needs 6 accelerators, 3 free"


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


@pytest.mark.parametrize(
    ("free", "whole", "cards", "reason"),
    [
        (15, 1, 16, "gang of 16 h800 needs 2 nodes of 8 cards, 1 of 2 wholly free"),
        (15, 1, 8, None),  # one node's worth fits in free cards
        (15, 1, 9, "gang of 9 h800 needs 2 nodes of 8 cards, 1 of 2 wholly free"),
        (3, -5, 3, None),  # many small jobs: no whole node, yet cards for one more
        (3, -5, 4, "gang of 4 h800 needs one pool, 3 free"),
    ],
)
def test_multi_node_jobs_need_whole_free_nodes_and_others_cards(
    free: int, whole: int, cards: int, reason: str | None
) -> None:
    topology = small_topology()
    east = _shaped("east", {"h800": free}, {"h800": (2, 8)}, {"h800": whole})
    placement = place(_spec(cards), _snapshot(topology, east), Policy.default())
    verdict = {c.site: c for c in placement.candidates}["east"]
    assert verdict.feasible == (reason is None)
    if reason is not None:
        assert verdict.reason == reason


def _two_by_eight() -> tuple[Topology, FederationSnapshot]:
    topology = _federation_of_a800({"only": 16})
    return topology, _snapshot(topology, _shaped("only", {"a800": 16}, {"a800": (2, 8)}))


@pytest.mark.parametrize("how", ["batch", "greedy"])
def test_two_eight_card_nodes_take_sixteen_one_card_jobs_in_one_round(how: str) -> None:
    _, snapshot = _two_by_eight()
    jobs = [(f"j{i}", _spec(1, model="a800")) for i in range(18)]
    place_jobs = place_batch if how == "batch" else place_greedy
    result = place_jobs(jobs, snapshot, Policy.default())
    placed = [j for j, s in result.assignment.items() if s is not None]
    assert len(placed) == 16
    for job_id, where in result.assignment.items():
        if where is None:
            assert result.reasons[job_id] == "no capacity left at any feasible site"


@pytest.mark.parametrize("how", ["batch", "greedy"])
def test_a_one_card_job_in_the_round_keeps_a_two_node_gang_out(how: str) -> None:
    """Placed together, a 1-card job and a 16-card gang cannot both have the 2 x 8 pool."""
    _, snapshot = _two_by_eight()
    jobs = [("one", _spec(1, model="a800")), ("gang", _spec(16, model="a800"))]
    place_jobs = place_batch if how == "batch" else place_greedy
    result = place_jobs(jobs, snapshot, Policy.default())
    assert sum(s is not None for s in result.assignment.values()) == 1


def test_with_one_card_held_a_two_node_gang_does_not_fit_and_a_one_node_job_does() -> None:
    """The pool as the ledger reports it with one 1-card job held: 15 cards, 1 whole node."""
    topology, _ = _two_by_eight()
    held = _shaped("only", {"a800": 15}, {"a800": (2, 8)}, {"a800": node_balance(2, [1], 8, 0)})
    snapshot = _snapshot(topology, held)
    why = "gang of 16 a800 needs 2 nodes of 8 cards, 1 of 2 wholly free"
    gang = place(_spec(16, model="a800"), snapshot, Policy.default())
    assert gang.chosen is None
    assert {c.site: c.reason for c in gang.candidates}["only"] == why
    batch = place_batch([("g", _spec(16, model="a800"))], snapshot, Policy.default())
    assert batch.assignment == {"g": None} and f"only: {why}" in batch.reasons["g"]
    assert place(_spec(8, model="a800"), snapshot, Policy.default()).chosen == "only"
    jobs = [(f"j{i}", _spec(1, model="a800")) for i in range(16)]
    assert (
        sum(
            s is not None for s in place_batch(jobs, snapshot, Policy.default()).assignment.values()
        )
        == 15
    )


@pytest.mark.parametrize("how", ["batch", "greedy"])
def test_jobs_smaller_than_a_node_share_nodes(how: str) -> None:
    """Four 4-card nodes hold five 3-card gangs, as one bin of 16 cards would."""
    topology = _federation_of_a800({"only": 16})
    snapshot = _snapshot(topology, _shaped("only", {"a800": 16}, {"a800": (4, 4)}))
    jobs = [(f"j{i}", _spec(3, model="a800")) for i in range(6)]
    place_jobs = place_batch if how == "batch" else place_greedy
    result = place_jobs(jobs, snapshot, Policy.default())
    assert sum(s is not None for s in result.assignment.values()) == 5


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 8),
    st.integers(0, 6),
    st.lists(st.integers(1, 24), max_size=30),
)
def test_every_multi_node_job_accepted_finds_its_nodes_whatever_the_layout(
    nodes: int, per_node: int, others: int, asks: list[int]
) -> None:
    """Accept jobs in turn by the two numbers; at each multi-node job, lay out everything
    accepted before it as badly as possible (every single-node job and every card of other
    work alone on a node of its own): the job's whole nodes are still free."""
    others = min(others, nodes * per_node)  # the site's own work uses cards it has
    free, accepted = nodes * per_node - others, []
    for cards in asks:
        balance = node_balance(nodes, accepted, per_node, others)
        if not fits_pool(cards, per_node, free, balance):
            continue
        if multi_node(cards, per_node):
            gangs = sum(nodes_needed(c, per_node) for c in accepted if multi_node(c, per_node))
            singles = sum(1 for c in accepted if not multi_node(c, per_node))
            untouched = nodes - gangs - min(singles + others, nodes - gangs)
            assert untouched >= nodes_needed(cards, per_node)
        accepted.append(cards)
        free -= footprint(cards, per_node)
    assert free >= 0


def _check_nodes(
    snapshot: FederationSnapshot, jobs: list[tuple[str, JobSpec]], result: BatchResult
) -> None:
    """Per pool: footprints <= free cards, multi-node jobs' nodes <= whole free nodes."""
    cards_taken: dict[tuple[str, str], int] = defaultdict(int)
    nodes_taken_by_gangs: dict[tuple[str, str], int] = defaultdict(int)
    specs = dict(jobs)
    for job_id, where in result.assignment.items():
        if where is None or not specs[job_id].accelerators_total:
            continue
        model = result.models[job_id]
        per_node = snapshot.sites[where].cards_per_node.get(model, 0)
        cards = specs[job_id].accelerators_total
        cards_taken[where, model] += footprint(cards, per_node)
        if multi_node(cards, per_node):
            nodes_taken_by_gangs[where, model] += nodes_needed(cards, per_node)
    for (where, model), used in cards_taken.items():
        cap = snapshot.sites[where]
        assert used <= cap.free.get(model, 0), (where, model)
        assert nodes_taken_by_gangs[where, model] <= max(0, cap.node_balance(model))


@st.composite
def shaped_instances(draw: st.DrawFn) -> Instance:
    """Random batches on random federations, with most pools given a node shape and a node
    balance no higher than their free cards allow (below zero where small jobs crowd them)."""
    snapshot, jobs = draw(instances())
    sites = {}
    for site_id, cap in snapshot.sites.items():
        pools = snapshot.topology.site(site_id).pools
        per_node = {p.model: draw(st.sampled_from([0, 1, 2, 4, 8, 16])) for p in pools}
        shaped = {m: c for m, c in per_node.items() if c}
        nodes = {p.model: max(1, p.count // shaped[p.model]) for p in pools if p.model in shaped}
        whole = {
            m: draw(st.integers(-3, min(n, cap.free.get(m, 0) // shaped[m])))
            for m, n in nodes.items()
        }
        sites[site_id] = replace(cap, cards_per_node=shaped, nodes=nodes, whole_nodes=whole)
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
