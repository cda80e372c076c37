"""Policies that ask the placement engine: `greedy` one job at a time, `optimal` jointly."""

from __future__ import annotations

import time
from collections.abc import Sequence

from broker.placement import ExpectedDemand, Policy, SolveBudget, place, place_batch
from broker.simulate.capacity import Allocation, Capacity
from broker.simulate.clock import unix_s
from broker.simulate.policy_base import BatchStats, Blocked, Start
from computenet.spec import JobSpec
from computenet.types import Placement
from computenet.workload import WorkloadJob
from computenet.workload_spec import workload_spec

DEFAULT_BATCH_LIMIT = 400
# a deterministic work budget worth about 1 s of solving on the measuring machine, so a replay
# gives the same figures however busy the machine is (broker/placement/budget.py)
DEFAULT_BUDGET = SolveBudget.deterministic(1.0)


class SpecCache:
    """Builds each job's JobSpec once per replay."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}

    def __call__(self, job: WorkloadJob) -> JobSpec:
        spec = self._specs.get(job.job_id)
        if spec is None:
            spec = self._specs[job.job_id] = workload_spec(job)
        return spec


def _scope(job: WorkloadJob) -> str:
    # the engine's SLO filter makes an inference job's feasibility depend on its region
    return job.user_region if job.kind == "inference" else ""


def could_fit(job: WorkloadJob, capacity: Capacity) -> bool:
    """Cheap necessary condition: some site has enough free cards of an acceptable model."""
    return capacity.largest_fit(job) >= job.count


def _model(placement: Placement) -> str:
    """The model the engine chose with the site ("" if it leaves the pool to the pool rule)."""
    best = placement.candidates[0] if placement.candidates else None
    return best.accelerator if best is not None and best.feasible else ""


def _pool_totals(capacity: Capacity) -> dict[str, dict[str, int]]:
    """Cards per site and model at the replay's capacity scale, busy or free."""
    totals: dict[str, dict[str, int]] = {}
    for site, pools in capacity.pools.items():
        by_model = totals.setdefault(site, {})
        for pool in pools:
            by_model[pool.model] = by_model.get(pool.model, 0) + pool.cards
    return totals


class EngineGreedy:
    """Each queued job in turn goes where `place()` says is cheapest among sites that fit it now."""

    name = "greedy"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.spec = SpecCache()

    def decide(self, queue: Sequence[WorkloadJob], capacity: Capacity, now_s: float) -> list[Start]:
        starts: list[Start] = []
        blocked = Blocked()
        for job in queue:
            if blocked.skip(job, _scope(job)):
                continue
            if not could_fit(job, capacity):
                blocked.fail(job, _scope(job))
                continue
            began = time.perf_counter()
            placement = place(self.spec(job), capacity.snapshot(unix_s(now_s)), self.policy)
            elapsed_ms = (time.perf_counter() - began) * 1000.0
            site = placement.chosen
            allocation = None if site is None else capacity.fit(site, job, _model(placement))
            if site is None or allocation is None:
                blocked.fail(job, _scope(job))
                continue
            capacity.take(site, allocation)
            starts.append(Start(job, site, allocation, elapsed_ms))
        return starts

    def batch_stats(self) -> BatchStats | None:
        return None


class EngineOptimal:
    """All queued jobs that could fit are placed jointly by `place_batch()` at each instant.

    The solver, not the queue order, decides which of them start when they compete for cards
    (it weighs each job's pending penalty and, under the default "delay" wait model, the wait
    a started job's card-hours impose on the jobs left queued, given the scaled pool sizes,
    and the headroom for the demand `expected` over the next hours).
    At most `batch_limit` jobs, in queue order, go into one solve; the rest, and jobs the
    solver leaves pending, wait for the next instant.
    """

    name = "optimal"

    def __init__(
        self,
        policy: Policy,
        *,
        batch_limit: int = DEFAULT_BATCH_LIMIT,
        budget: SolveBudget = DEFAULT_BUDGET,
        expected: ExpectedDemand | None = None,
    ) -> None:
        self.policy = policy
        self.expected = expected
        self.spec = SpecCache()
        self.batch_limit = batch_limit
        self.budget = budget
        self.stats = BatchStats()

    def decide(self, queue: Sequence[WorkloadJob], capacity: Capacity, now_s: float) -> list[Start]:
        return self._solve(self._candidates(queue, capacity), capacity, now_s)

    def _solve(self, batch: list[WorkloadJob], capacity: Capacity, now_s: float) -> list[Start]:
        if not batch:
            return []
        result = place_batch(
            [(job.job_id, self.spec(job)) for job in batch],
            capacity.snapshot(unix_s(now_s)),
            self.policy,
            budget=self.budget,
            pool_totals=_pool_totals(capacity),
            expected=self.expected,
        )
        self._record(result.objective_cny, result.lp_bound_cny, result.gap, result.method)
        per_job_ms = result.solve_s * 1000.0 / len(batch)
        starts = []
        for job in batch:
            site = result.assignment.get(job.job_id)
            if site is None:
                continue
            allocation = self._allocation(capacity, job, site, result.models.get(job.job_id, ""))
            if allocation is None:
                continue
            capacity.take(site, allocation)
            starts.append(Start(job, site, allocation, per_job_ms))
        return starts

    def _candidates(self, queue: Sequence[WorkloadJob], capacity: Capacity) -> list[WorkloadJob]:
        """Queued jobs (in queue order) that could fit on their own now, at most `batch_limit`."""
        blocked = Blocked()
        batch: list[WorkloadJob] = []
        for job in queue:
            if len(batch) >= self.batch_limit:
                break
            if blocked.skip(job):
                continue
            if could_fit(job, capacity):
                batch.append(job)
            else:
                blocked.fail(job)
        return batch

    @staticmethod
    def _allocation(
        capacity: Capacity, job: WorkloadJob, site: str, model: str
    ) -> Allocation | None:
        """The pool of the model the solver chose, else wherever the job fits at that site."""
        if model:
            exact = capacity.fit(site, job, model)
            if exact is not None:
                return exact
        return capacity.fit(site, job)

    def _record(self, objective: float, bound: float, gap: float, method: str) -> None:
        stats = self.stats
        stats.objective_cny += objective
        stats.lp_bound_cny += bound
        stats.batches += 1
        stats.max_gap = max(stats.max_gap, gap)
        stats.methods[method] = stats.methods.get(method, 0) + 1

    def batch_stats(self) -> BatchStats | None:
        return self.stats
