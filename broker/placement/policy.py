"""The placement policy (ordered filters, weighted cost terms) and its evaluation over options."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from broker.placement.config import PolicyConfig
from broker.placement.demand import JobDemand
from broker.placement.filters import Filter, default_filters
from broker.placement.tables import EvalContext, FloatArray, IntArray
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
    n_filters = len(policy.filters)
    alive = np.arange(ctx.table.n_options, dtype=np.int64)
    failed_at = np.full(alive.size, n_filters, dtype=np.int64)
    for k, rule in enumerate(policy.filters):
        keep = rule.passes(job, ctx, alive)
        failed_at[alive[~keep]] = k
        alive = alive[keep]
        if alive.size == 0:
            break
    if alive.size == 0:
        empty = np.zeros((len(policy.terms), 0))
        return Evaluation(failed_at, alive, empty, np.zeros(0))
    rows = [
        term.cost_cny(job, ctx, alive) * weight if weight else np.zeros(alive.size)
        for term, weight in zip(policy.terms, policy.weights, strict=True)
    ]
    term_cny = np.vstack(rows)
    return Evaluation(failed_at, alive, term_cny, term_cny.sum(axis=0))
