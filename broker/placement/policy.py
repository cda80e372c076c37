"""The placement policy (ordered filters, weighted cost terms) and its evaluation over options."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from broker.placement.config import PolicyConfig
from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.filters import Filter, default_filters
from broker.placement.tables import BoolArray, EvalContext, FloatArray, IntArray
from broker.placement.terms import CostTerm, default_terms


@dataclass(frozen=True, slots=True)
class Policy:
    """Ordered filters (hard constraints) and cost terms (CNY, each scaled by its weight)."""

    config: PolicyConfig
    filters: tuple[Filter, ...]
    terms: tuple[CostTerm, ...]
    weights: tuple[float, ...]

    @classmethod
    def default(cls, config: PolicyConfig | None = None) -> Policy:
        """The standard filters and terms, priced and weighted by `config`."""
        config = config or PolicyConfig()
        terms = default_terms(config)
        weights = tuple(config.weight(term.name) for term in terms)
        return cls(config=config, filters=default_filters(), terms=terms, weights=weights)

    @property
    def term_names(self) -> tuple[str, ...]:
        """Names of the cost terms, in evaluation order."""
        return tuple(term.name for term in self.terms)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Filter verdicts and costs of one job over every option of the federation.

    `failed_at[k]` is the index of the first filter option k failed, or len(filters) if it
    passed them all. `feasible` lists the passing options; `term_cny` (terms x feasible) and
    `total_cny` give their weighted costs in the same order.
    """

    failed_at: IntArray
    feasible: IntArray
    term_cny: FloatArray
    total_cny: FloatArray


def evaluate(policy: Policy, job: JobDemand, ctx: EvalContext) -> Evaluation:
    """Run the filters in order over all options, then price the options that passed."""
    jobs = DemandArrays.of((job,))
    every = np.arange(ctx.table.n_options, dtype=np.int64)
    failed_at = first_failures(policy, job, ctx, every, jobs)
    alive = np.flatnonzero(failed_at == len(policy.filters))
    if alive.size == 0:
        empty = np.zeros((len(policy.terms), 0))
        return Evaluation(failed_at, alive, empty, np.zeros(0))
    term_cny = np.vstack(
        [
            _cost_many(term, jobs, ctx, alive)[0] * weight if weight else np.zeros(alive.size)
            for term, weight in zip(policy.terms, policy.weights, strict=True)
        ]
    )
    return Evaluation(failed_at, alive, term_cny, term_cny.sum(axis=0))


def first_failures(
    policy: Policy,
    job: JobDemand,
    ctx: EvalContext,
    opts: IntArray,
    jobs: DemandArrays | None = None,
) -> IntArray:
    """For each of `opts`, the index of the first filter it fails (len(filters) if none)."""
    jobs = jobs or DemandArrays.of((job,))
    failed_at = np.full(opts.size, len(policy.filters), dtype=np.int64)
    alive = np.arange(opts.size)
    for k, rule in enumerate(policy.filters):
        keep = _passes_many(rule, jobs, ctx, opts[alive])[0]  # one job: one row either way
        failed_at[alive[~keep]] = k
        alive = alive[keep]
        if alive.size == 0:
            break
    return failed_at


def first_failures_many(
    policy: Policy, jobs: DemandArrays, ctx: EvalContext, opts: IntArray
) -> IntArray:
    """`first_failures` of every job (rows) over the same options (columns)."""
    n_filters = len(policy.filters)
    failed_at = np.full((len(jobs), opts.size), n_filters, dtype=np.int64)
    for k, rule in enumerate(reversed(policy.filters)):
        verdict = np.broadcast_to(_passes_many(rule, jobs, ctx, opts), failed_at.shape)
        failed_at[~verdict] = n_filters - 1 - k  # earlier filters overwrite later ones
    return failed_at


def evaluate_many(
    policy: Policy, jobs: DemandArrays, ctx: EvalContext, opts: IntArray
) -> tuple[IntArray, BoolArray, FloatArray]:
    """Which of `opts` pass every filter for each job, and the weighted total cost there.

    Returns the options some job may use (columns, a subset of `opts` in its order), a jobs x
    columns feasibility mask and the jobs x columns total costs (meaningless where infeasible).
    Options no job can use are dropped after each filter, so grouping jobs that ask for the
    same accelerator keeps the arrays narrow.
    """
    mask = np.ones((len(jobs), opts.size), dtype=np.bool_)
    for rule in policy.filters:
        mask &= _passes_many(rule, jobs, ctx, opts)
        used = mask.any(axis=0)
        if not used.all():
            opts, mask = opts[used], mask[:, used]
        if opts.size == 0:
            break
    total = np.zeros(mask.shape)
    for term, weight in zip(policy.terms, policy.weights, strict=True):
        if weight and opts.size:
            total += _cost_many(term, jobs, ctx, opts) * weight
    return opts, mask, total


def _passes_many(rule: Filter, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> BoolArray:
    """Jobs x opts verdicts (one row if they hold for every job), batched if the filter can."""
    many = getattr(rule, "passes_many", None)  # see filters.BatchFilter
    if many is not None:
        return np.asarray(many(jobs, ctx, opts), dtype=np.bool_)
    return np.vstack([rule.passes(job, ctx, opts) for job in jobs.demands])


def _cost_many(term: CostTerm, jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
    """Jobs x opts costs, batched if the term can."""
    many = getattr(term, "cost_many", None)  # see terms.BatchCostTerm
    if many is not None:
        return np.asarray(many(jobs, ctx, opts), dtype=np.float64)
    return np.vstack([term.cost_cny(job, ctx, opts) for job in jobs.demands])
