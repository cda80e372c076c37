"""Properties of the planner over random federations: capacity, budget, idempotence, no flapping."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.placement import FederationSnapshot, JobDemand, Policy, SiteCapacity
from broker.rebalance import (
    ActiveJob,
    Move,
    PendingJob,
    RebalanceConfig,
    RebalanceInput,
    plan_moves,
    project,
)
from computenet.types import SiteStatus
from tests.rebalance.factories import POLICY, at_cst, inference, training
from topology import default_topology

TOPOLOGY = default_topology()
SITES = [str(s.id) for s in TOPOLOGY.sites]
REGIONS = [str(r) for r in TOPOLOGY.region_ids]
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def federations(draw: st.DrawFn, *, allow_draining: bool = True) -> RebalanceInput:
    """A random state of the built-in federation: free capacity, jobs running and waiting."""
    sites: dict[str, SiteCapacity] = {}
    for site in TOPOLOGY.sites:
        share = draw(st.sampled_from([0.0, 0.02, 0.1, 0.3]))
        status = SiteStatus.ACTIVE
        if allow_draining and draw(st.integers(0, 9)) == 0:
            status = SiteStatus.DRAINING
        sites[site.id] = SiteCapacity(
            site.id,
            status,
            MappingProxyType({p.model: int(p.count * share) for p in site.pools}),
            site.cpu_cores * share,
            site.memory_gb * share,
        )
    snap = FederationSnapshot(TOPOLOGY, MappingProxyType(sites), at_cst(draw(st.floats(0, 23.9))))
    active: list[ActiveJob] = []
    demand: dict[str, dict[str, float]] = {}
    for k in range(draw(st.integers(0, 8))):
        site = TOPOLOGY.site(draw(st.sampled_from(SITES)))
        pool = draw(st.sampled_from(site.pools))
        if draw(st.booleans()):
            regions = {
                r: 1.0 for r in draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3))
            }
            spec = inference(regions, slo_ms=draw(st.sampled_from([25.0, 40.0, 80.0])))
            spec = spec.model_copy(
                update={"resources": spec.resources.model_copy(update={"accelerator": pool.model})}
            )
            shifted = {
                r: 1.0 for r in draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3))
            }
            demand[f"a{k}"] = shifted
        else:
            spec = training(
                draw(st.floats(2.0, 400.0)),
                accelerator=pool.model,
                cards=draw(st.sampled_from([8, 64, 128])),
                checkpoint_gb=draw(st.sampled_from([None, 50.0, 2000.0])),
            )
        elapsed = draw(st.floats(0.0, 1.0)) * spec.duration_hours
        active.append(ActiveJob(f"a{k}", spec, site.id, elapsed_h=elapsed, accelerator=pool.model))
    pending = [
        PendingJob(
            f"p{k}",
            training(
                draw(st.floats(1.0, 200.0)),
                accelerator=draw(st.sampled_from(["a800", "910b", "h20"])),
                cards=draw(st.sampled_from([8, 64, 256])),
            ),
        )
        for k in range(draw(st.integers(0, 4)))
    ]
    return RebalanceInput(snap, tuple(active), tuple(pending), demand, {}, Policy.default(POLICY))


def _demand(state: RebalanceInput, move: Move) -> JobDemand:
    jobs = {j.job_id: j.spec for j in state.active} | {j.job_id: j.spec for j in state.pending}
    return JobDemand.from_spec(jobs[move.job_id])


@PROPERTY_SETTINGS
@given(state=federations(), budget=st.integers(0, 6))
def test_moves_never_overbook_and_respect_the_budget(state: RebalanceInput, budget: int) -> None:
    moves = plan_moves(state, RebalanceConfig(max_moves_per_run=budget))
    assert len(moves) <= budget
    assert len({m.job_id for m in moves}) == len(moves)
    cards: dict[tuple[str, str], int] = defaultdict(int)
    cpu: dict[str, float] = defaultdict(float)
    memory: dict[str, float] = defaultdict(float)
    for move in moves:
        demand = _demand(state, move)
        assert move.to_site != move.from_site
        assert state.snapshot.sites[move.to_site].status == SiteStatus.ACTIVE
        cards[(move.to_site, move.accelerator)] += demand.cards
        cpu[move.to_site] += demand.cpu_cores
        memory[move.to_site] += demand.memory_gb
    for (site, model), used in cards.items():
        assert used <= state.snapshot.sites[site].free.get(model, 0)
    for site, cores in cpu.items():
        assert cores <= state.snapshot.sites[site].cpu_free + 1e-6
        assert memory[site] <= state.snapshot.sites[site].memory_gb_free + 1e-6


@PROPERTY_SETTINGS
@given(state=federations())
def test_replanning_after_applying_a_plan_plans_nothing(state: RebalanceInput) -> None:
    config = RebalanceConfig(max_moves_per_run=1000)
    moves = plan_moves(state, config)
    assert plan_moves(project(state, moves), config) == []


def _advance(state: RebalanceInput, hours: float) -> RebalanceInput:
    """The same federation `hours` later: jobs have progressed, finished ones are gone."""
    active = tuple(
        dataclasses.replace(j, elapsed_h=j.elapsed_h + hours)
        for j in state.active
        if j.elapsed_h + hours < j.spec.duration_hours
    )
    snap = dataclasses.replace(state.snapshot, now_unix_s=state.snapshot.now_unix_s + hours * 3600)
    return dataclasses.replace(state, snapshot=snap, active=active)


@PROPERTY_SETTINGS
@given(
    state=federations(allow_draining=False),
    steps_h=st.lists(st.sampled_from([0.25, 1.0, 3.0, 7.0]), min_size=3, max_size=8),
)
def test_no_job_moves_back_and_forth_across_runs(
    state: RebalanceInput, steps_h: list[float]
) -> None:
    state = dataclasses.replace(state, demand={})  # prices change with time; demand does not
    config = RebalanceConfig(cooldown_runs=1, cooldown_s=0.0)
    visits: dict[str, list[str]] = {j.job_id: [j.site] for j in state.active}
    for hours in steps_h:
        moves = plan_moves(state, config)
        for move in moves:
            visits.setdefault(move.job_id, []).append(move.to_site)
        state = _advance(project(state, moves, release_sources=True), hours)
    for sites in visits.values():
        for a, b, c in zip(sites, sites[1:], sites[2:], strict=False):
            assert not (a == c and a != b), sites
