"""The warm batch LP: packing cuts are valid, bounds hold with any window, re-solves agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_placement import exact_optimum
from broker.placement import FederationSnapshot, Policy, SolveBudget
from broker.placement.capacity import JobClass, Ledger
from broker.placement.classes import job_classes
from broker.placement.cuts import size_levels, slot_limits
from broker.placement.master import MasterLp
from broker.placement.option_index import OptionIndex
from broker.placement.pricing import column_generation, lagrangian_bound
from broker.placement.tables import context_for
from computenet.spec import JobSpec
from tests.placement.test_batch import instances

Instance = tuple[FederationSnapshot, list[tuple[str, JobSpec]]]


def test_levels_and_slots() -> None:
    cards = np.asarray([0, 1, 8, 8, 256, 128, 3])
    np.testing.assert_array_equal(size_levels(cards), [3, 8, 128, 256])
    limits = slot_limits(np.asarray([300, 255]), np.asarray([8, 128, 256]))
    np.testing.assert_array_equal(limits, [[37, 2, 1], [31, 1, 0]])


def master_classes(instance: Instance) -> list[JobClass]:
    snapshot, jobs = instance
    classes, _ = job_classes(jobs, context_for(snapshot, single_pool=True), Policy.default())
    return [c for c in classes if c.placeable]


def _master(instance: Instance, window: int | None) -> tuple[MasterLp, OptionIndex, float] | None:
    snapshot, jobs = instance
    policy = Policy.default()
    ctx = context_for(snapshot, single_pool=True)
    placeable = master_classes(instance)
    if not placeable:
        return None
    counts = np.asarray([len(c.jobs) for c in placeable], dtype=np.float64)
    ledger = Ledger(ctx)
    sizes = None if window is None else np.full(len(placeable), window, dtype=np.int64)
    index = OptionIndex(placeable, ledger, counts, sizes)
    master = MasterLp(index, ledger)
    master.add_columns(index.start[:-1].copy())  # each class's cheapest option
    return master, index, exact_optimum(jobs, snapshot, policy)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from([None, 1, 2]))
def test_bounds_stay_below_the_optimum_with_cuts_and_windows(
    instance: Instance, window: int | None
) -> None:
    built = _master(instance, window)
    if built is None:
        return
    master, index, optimum = built
    outcome = column_generation(master, SolveBudget(time_s=30.0).start(), per_round=4)
    assert outcome.solved and outcome.solution is not None
    scale = max(1.0, abs(optimum))
    assert outcome.bound_cny <= optimum + 1e-6 * scale
    caps = index.caps(np.arange(index.n_pairs), index.counts, master.ledger)
    bound, _ = lagrangian_bound(index, master, outcome.solution, caps)
    assert bound <= optimum + 1e-6 * scale


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_resolving_after_rebounding_matches_a_fresh_model(instance: Instance) -> None:
    built = _master(instance, None)
    if built is None:
        return
    master, index, _ = built
    master.add_columns(np.arange(index.n_pairs))
    first = master.solve(SolveBudget(time_s=30.0).start())
    assert first is not None
    # as a dive does: some jobs take capacity, the others stay to be placed
    ledger = master.ledger.copy()
    left = index.counts.copy()
    for k, cls in enumerate(master_classes(instance)):
        for _ in range(int(left[k]) // 2):
            if ledger.fits(cls.demand, int(cls.opts[0])):
                ledger.take(cls.demand, int(cls.opts[0]))
                left[k] -= 1
    half = left
    master.set_capacity(half, ledger)
    warm = master.solve(SolveBudget(time_s=30.0).start())
    fresh = MasterLp(index, ledger)
    fresh.set_capacity(half, ledger)
    fresh.add_columns(np.arange(index.n_pairs))
    cold = fresh.solve(SolveBudget(time_s=30.0).start())
    assert warm is not None and cold is not None
    assert warm.value_cny == pytest.approx(cold.value_cny, rel=1e-7, abs=1e-6)
