"""The simulator's rebalancing runs: moved jobs keep their work and the report has both sides."""

from __future__ import annotations

import dataclasses

import pytest

from broker.placement import PolicyConfig
from broker.rebalance import RebalanceConfig
from broker.simulate import Capacity, WorkloadJob, make_policy, replay
from broker.simulate.clock import SECONDS_PER_HOUR
from broker.simulate.compare import Scenario, compare
from broker.simulate.rebalancing import ReplayRebalancer
from broker.simulate.replay import Migration, Run
from broker.simulate.workload import load_workload
from topology import Topology, default_topology


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


def _running(tiny: Topology, kind: str) -> tuple[Capacity, Run]:
    """A 1,000 h job of `kind` on all 8 a100 cards of `mid`, started at 0."""
    job = WorkloadJob(
        job_id=kind,
        submit_s=0.0,
        kind=kind,  # type: ignore[arg-type]
        accelerator="a100",
        count=8,
        duration_s=1000 * SECONDS_PER_HOUR,
        origin="mid",
        dataset_gb=0.0,
        user_region="",
        latency_slo_ms=None,
        tenant="t",
    )
    capacity = Capacity(tiny)
    allocation = capacity.fit("mid", job)
    assert allocation is not None
    capacity.take("mid", allocation)
    return capacity, Run(job, "mid", allocation, 0.0, 0.0)


def test_a_replayed_move_idles_and_redoes_what_the_planner_priced(tiny: Topology) -> None:
    capacity, run = _running(tiny, "training")
    rebalancer = ReplayRebalancer(every_s=SECONDS_PER_HOUR)
    [migration] = rebalancer.plan([(0, run)], capacity, 2 * SECONDS_PER_HOUR)
    assert migration.site == "far"
    # it stops with a checkpoint (20 GB a card): nothing redone, idle while it crosses
    idle_h = tiny.transfer_hours("mid", "far", 20.0 * 8) + RebalanceConfig().restart_overhead_h
    assert migration.downtime_s == pytest.approx(idle_h * SECONDS_PER_HOUR)
    assert migration.redo_s == 0.0


def test_a_moved_run_does_its_redone_work_again_at_the_target(tiny: Topology) -> None:
    _, run = _running(tiny, "batch")
    capacity = Capacity(tiny)

    class MoveOnce:
        every_s = 2 * SECONDS_PER_HOUR

        def plan(self, running: object, capacity: Capacity, now_s: float) -> list[Migration]:
            return [Migration(0, "far", 600.0, 1.0, redo_s=now_s)] if now_s == self.every_s else []

    policy = make_policy("nearest", tiny, capacity, seed=0, config=PolicyConfig())
    result = replay([run.job], capacity, policy, rebalancer=MoveOnce())
    first, rest = result.runs
    assert (first.site, first.job.duration_s) == ("mid", 2 * SECONDS_PER_HOUR)
    assert (rest.site, rest.start_s, rest.resumed) == ("far", 2 * SECONDS_PER_HOUR + 600, True)
    assert rest.job.duration_s == 1000 * SECONDS_PER_HOUR, "its first two hours run again"
