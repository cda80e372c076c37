"""Local search after rounding: never dearer, never overcommitted, only feasible options."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from bench.bench_placement import busy_snapshot
from broker.placement import (
    FederationSnapshot,
    Policy,
    PolicyConfig,
    SolveBudget,
    place_batch,
    place_greedy,
)
from broker.placement.capacity import Ledger, objective_cny
from broker.placement.classes import job_classes
from broker.placement.greedy import greedy_assignment, regret_assignment
from broker.placement.rematch import rematch
from broker.placement.repair import improve
from broker.placement.tables import context_for
from computenet.spec import JobSpec, parse_spec
from tests.placement.test_batch import TOL, _check_capacity, instances
from topology import synthetic_topology

Instance = tuple[FederationSnapshot, list[tuple[str, JobSpec]]]


def _ledger_after(ledger: Ledger, classes: list, chosen: dict[str, int]) -> Ledger:
    for cls in classes:
        for job in cls.jobs:
            if job in chosen:
                ledger.take(cls.demand, int(cls.opts[chosen[job]]))
    return ledger


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_improve_never_raises_cost_nor_overcommits(instance: Instance) -> None:
    snapshot, jobs = instance
    ctx = context_for(snapshot, single_pool=True)
    classes, members = job_classes(jobs, ctx, Policy.default())
    start = greedy_assignment(classes, members, ctx)
    placeable = [c for c in classes if c.placeable]
    ledger = _ledger_after(Ledger(ctx), placeable, start)
    better = improve(placeable, dict(start), ledger, SolveBudget(time_s=5.0).start())
    before, after = objective_cny(classes, start), objective_cny(classes, better)
    assert after <= before + TOL * max(1.0, abs(before))
    fresh = _ledger_after(Ledger(ctx), placeable, better)
    assert np.all(fresh.cards >= 0)
    assert np.all(fresh.cpu >= -TOL) and np.all(fresh.memory_gb >= -TOL)
    np.testing.assert_array_equal(fresh.cards, ledger.cards)  # the ledger kept in step
    for cls in classes:
        for job in cls.jobs:
            if job in better:
                assert 0 <= better[job] < cls.opts.size  # a position in the class's options
    assert set(better) <= {job for job, _ in jobs}


def test_insertion_displaces_small_jobs_for_a_more_valuable_large_one() -> None:
    topology = synthetic_topology(3, 2, 6, 5)
    snapshot = busy_snapshot(topology, 0.3, 5)
    model = topology.sites[0].pools[0].model
    small = parse_spec(
        {
            "name": "s",
            "kind": "batch",
            "command": ["x"],
            "resources": {"accelerator": model, "count": 1},
            "duration_hours": 1.0,
            "gang": False,
        }
    )
    big = parse_spec(
        {
            "name": "b",
            "kind": "training",
            "command": ["x"],
            "resources": {"accelerator": model, "count": 8},
            "duration_hours": 1.0,
            "priority": 100,
        }
    )
    jobs = [(f"s{i}", small) for i in range(400)] + [("big", big)]
    result = place_batch(jobs, snapshot, Policy.default(), time_budget_s=5.0)
    _check_capacity(snapshot, jobs, result)
    greedy = place_greedy(jobs, snapshot, Policy.default())
    assert result.objective_cny <= greedy.objective_cny + TOL * abs(greedy.objective_cny)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_cheapest_pending_base_stays_between_bound_and_greedy(instance: Instance) -> None:
    snapshot, jobs = instance
    policy = Policy.default(PolicyConfig(pending_penalty_base="cheapest"))
    result = place_batch(jobs, snapshot, policy, time_budget_s=5.0)
    _check_capacity(snapshot, jobs, result)
    greedy = place_greedy(jobs, snapshot, policy)
    scale = max(1.0, abs(greedy.objective_cny))
    assert result.lp_bound_cny - TOL * scale <= result.objective_cny
    assert result.objective_cny <= greedy.objective_cny + TOL * scale


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_rematch_never_raises_cost_nor_overcommits(instance: Instance) -> None:
    snapshot, jobs = instance
    ctx = context_for(snapshot, single_pool=True)
    classes, members = job_classes(jobs, ctx, Policy.default())
    start = regret_assignment(classes, members, ctx)
    placeable = [c for c in classes if c.placeable]
    ledger = _ledger_after(Ledger(ctx), placeable, start)
    better = dict(start)
    rematch(placeable, better, ledger, SolveBudget(time_s=5.0).start())
    before, after = objective_cny(classes, start), objective_cny(classes, better)
    assert after <= before + TOL * max(1.0, abs(before))
    fresh = _ledger_after(Ledger(ctx), placeable, better)
    assert np.all(fresh.cards >= 0)
    assert np.all(fresh.cpu >= -TOL) and np.all(fresh.memory_gb >= -TOL)
    np.testing.assert_array_equal(fresh.cards, ledger.cards)


def test_rematch_moves_each_job_of_a_size_to_its_cheapest_place() -> None:
    topology = synthetic_topology(3, 2, 6, 5)
    snapshot = busy_snapshot(topology, 0.3, 5)
    ctx = context_for(snapshot, single_pool=True)
    model = topology.sites[0].pools[0].model
    template = {
        "name": "s",
        "kind": "training",
        "command": ["x"],
        "resources": {"accelerator": model, "count": 1},
    }
    specs = [
        (f"j{i}", parse_spec(template | {"duration_hours": hours, "priority": i}))
        for i, hours in enumerate([1.0, 50.0, 7.0])
    ]
    classes, _ = job_classes(specs, ctx, Policy.default())
    chosen = {c.jobs[0]: c.opts.size - 1 for c in classes}  # everyone at its dearest
    ledger = _ledger_after(Ledger(ctx), classes, chosen)
    rematch(classes, chosen, ledger, SolveBudget(time_s=5.0).start())
    assert chosen == {c.jobs[0]: 0 for c in classes}
    np.testing.assert_array_equal(ledger.cards, _ledger_after(Ledger(ctx), classes, chosen).cards)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_regret_path_respects_capacity_and_beats_greedy(instance: Instance) -> None:
    snapshot, jobs = instance
    policy = Policy.default(PolicyConfig(batch_lp_max_classes=0))
    result = place_batch(jobs, snapshot, policy, time_budget_s=5.0)
    _check_capacity(snapshot, jobs, result)
    greedy = place_greedy(jobs, snapshot, policy)
    assert result.objective_cny <= greedy.objective_cny + TOL * max(1.0, abs(greedy.objective_cny))
    assert result.objective_cny >= result.lp_bound_cny - TOL * max(1.0, abs(greedy.objective_cny))
