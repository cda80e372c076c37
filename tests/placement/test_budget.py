"""A work budget makes batch placement independent of the clock; a time budget follows it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from bench.bench_placement import busy_snapshot, distinct_queue
from broker.placement import FederationSnapshot, Policy, SolveBudget, place_batch, place_greedy
from broker.placement.batch import BatchResult
from computenet.spec import JobSpec
from tests.placement.test_batch import instances
from topology import synthetic_topology


def _instance() -> tuple[FederationSnapshot, list[tuple[str, JobSpec]]]:
    """Enough distinct jobs on busy pools that a small budget stops the solve part-way."""
    topology = synthetic_topology(12, 4, 40, 5)
    return busy_snapshot(topology, 0.3, 5), distinct_queue(topology, 120, 5)


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process so slow that every reading of the clock is 5 s after the one before."""
    ticks = itertools.count()
    start = time.perf_counter()
    monkeypatch.setattr(time, "perf_counter", lambda: start + 5.0 * next(ticks))
    yield


def _same(first: BatchResult, second: BatchResult) -> None:
    assert first.assignment == second.assignment
    assert first.models == second.models
    assert first.method == second.method
    assert np.isclose(first.objective_cny, second.objective_cny, rtol=0, atol=0)
    assert np.isclose(first.lp_bound_cny, second.lp_bound_cny, rtol=0, atol=0)


@pytest.mark.parametrize("seconds", [0.002, 0.02, 1.0])
def test_work_budget_gives_the_same_result_on_a_slow_clock(
    seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot, jobs = _instance()
    policy = Policy.default()
    budget = SolveBudget.deterministic(seconds)
    quiet = place_batch(jobs, snapshot, policy, budget=budget)
    ticks = itertools.count()
    start = time.perf_counter()
    monkeypatch.setattr(time, "perf_counter", lambda: start + 5.0 * next(ticks))
    slowed = place_batch(jobs, snapshot, policy, budget=budget)
    _same(quiet, slowed)
    assert slowed.solve_s > 5.0  # the clock did jump under the solve


def test_budget_size_changes_the_work_done() -> None:
    """The budget binds on this instance: a tiny one stops before the LP helps."""
    snapshot, jobs = _instance()
    policy = Policy.default()
    tiny = place_batch(jobs, snapshot, policy, budget=SolveBudget(work=1))
    ample = place_batch(jobs, snapshot, policy, budget=SolveBudget.deterministic(1.0))
    assert tiny.method == "greedy"  # no LP: only the first re-match fitted in
    assert ample.method != "greedy"
    assert ample.objective_cny < tiny.objective_cny - 1e-6


def test_time_budget_honours_the_clock(slow_clock: None) -> None:
    """With the wall clock, a process slowed past its budget returns the greedy placement."""
    snapshot, jobs = _instance()
    policy = Policy.default()
    result = place_batch(jobs, snapshot, policy, time_budget_s=1.0)
    greedy = place_greedy(jobs, snapshot, policy)
    assert result.method == "greedy"
    assert result.assignment == greedy.assignment


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_work_budget_repeats_exactly(
    instance: tuple[FederationSnapshot, list[tuple[str, JobSpec]]],
) -> None:
    snapshot, jobs = instance
    policy = Policy.default()
    budget = SolveBudget.deterministic(0.005)
    _same(
        place_batch(jobs, snapshot, policy, budget=budget),
        place_batch(jobs, snapshot, policy, budget=budget),
    )
