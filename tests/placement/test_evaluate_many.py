"""Evaluating many demands at once gives each job the verdicts and costs of evaluating it alone."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_placement import busy_snapshot
from broker.placement import JobDemand, Policy
from broker.placement.demand import DemandArrays
from broker.placement.policy import evaluate, evaluate_many, first_failures, first_failures_many
from broker.placement.tables import context_for
from computenet.spec import parse_spec
from tests.placement.test_batch import job_specs
from topology import synthetic_topology


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10_000),
    st.lists(job_specs(), min_size=1, max_size=6),
    st.booleans(),
)
def test_batch_evaluation_matches_one_job_at_a_time(
    seed: int, specs: list[dict[str, object]], single_pool: bool
) -> None:
    topology = synthetic_topology(5, 2, 10, seed)
    ctx = context_for(busy_snapshot(topology, 0.3, seed), single_pool=single_pool)
    policy = Policy.default()
    demands = [JobDemand.from_spec(parse_spec(s)) for s in specs]
    every = np.arange(ctx.table.n_options, dtype=np.int64)
    opts, mask, total = evaluate_many(policy, DemandArrays.of(demands), ctx, every)
    failures = first_failures_many(policy, DemandArrays.of(demands), ctx, every)
    for row, demand in enumerate(demands):
        alone = evaluate(policy, demand, ctx)
        np.testing.assert_array_equal(opts[mask[row]], alone.feasible)
        np.testing.assert_allclose(total[row, mask[row]], alone.total_cny, rtol=1e-12)
        np.testing.assert_array_equal(failures[row], alone.failed_at)
        np.testing.assert_array_equal(first_failures(policy, demand, ctx, every), alone.failed_at)
