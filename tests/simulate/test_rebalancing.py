"""The simulator's rebalancing runs: moved jobs keep their work and the report has both sides."""

from __future__ import annotations

import dataclasses

from broker.simulate.compare import Scenario, compare
from broker.simulate.workload import load_workload
from topology import default_topology


def test_rebalancing_runs_move_training_and_keep_every_job() -> None:
    topology = default_topology()
    loaded = load_workload("philly,alibaba-genai", topology, seed=0, limit=800)
    scenario = Scenario(loaded.jobs, topology)
    without = compare(scenario, ["nearest"])["nearest"]
    moved = compare(dataclasses.replace(scenario, rebalance_every_h=6.0), ["nearest"])["nearest"]
    assert moved.jobs == without.jobs
    assert moved.rebalance_runs > 0 and moved.migrations > 0
    assert moved.migration_cost_cny > 0
    assert moved.carbon_t < without.carbon_t
    assert without.migrations == 0
