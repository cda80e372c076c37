"""Rebalancing inside a replay: the pure planner run on the simulated federation every few hours."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.placement import Policy, PolicyConfig
from broker.rebalance import (
    ActiveJob,
    LastMove,
    MoveKind,
    RebalanceConfig,
    RebalanceInput,
    plan_moves,
)
from broker.rebalance.pricing import move_time
from broker.simulate.capacity import Capacity
from broker.simulate.clock import SECONDS_PER_HOUR, unix_s
from broker.simulate.replay import Migration, Run
from computenet.spec import Checkpoint
from computenet.workload_spec import workload_spec

CHECKPOINT_GB_PER_CARD = 20.0
"""Assumed checkpoint size of a training job per card it holds (weights and optimizer state)."""
MOVING_KINDS = frozenset({MoveKind.MIGRATE, MoveKind.EVACUATE, MoveKind.FOLLOW_DEMAND})


@dataclass
class ReplayRebalancer:
    """Runs `plan_moves` on the replay's running jobs and free cards; training jobs checkpoint.

    Pending jobs stay with the replay's placement policy, so only moves of running jobs apply.
    Move history feeds the planner's anti-flapping exactly as run records do in the broker.
    """

    every_s: float
    topology_config: PolicyConfig = field(default_factory=PolicyConfig)
    config: RebalanceConfig = field(default_factory=RebalanceConfig)
    history: dict[str, LastMove] = field(default_factory=dict)
    applied_runs: int = 0

    def plan(
        self, running: Sequence[tuple[int, Run]], capacity: Capacity, now_s: float
    ) -> list[Migration]:
        """The migrations of one run at `now_s`."""
        by_job = {run.job.job_id: (k, run) for k, run in running}
        active = [active_job(run, now_s, capacity) for _, run in running if run.start_s <= now_s]
        state = RebalanceInput(
            snapshot=capacity.snapshot(unix_s(now_s)),
            active=tuple(active),
            history=dict(self.history),
            policy=Policy.default(self.topology_config),
            checkpoint_sites=None,  # every simulated site moves checkpoints
        )
        moves = [m for m in plan_moves(state, self.config) if m.kind in MOVING_KINDS]
        jobs = {job.job_id: job for job in active}
        out: list[Migration] = []
        for move in moves:
            index, _ = by_job[move.job_id]
            # The same price the planner put on the move: what the broker does to the job.
            moving = move_time(
                jobs[move.job_id],
                move.to_site,
                capacity.topology,
                restart_overhead_h=self.config.restart_overhead_h,
            )
            downtime_s = moving.idle_h * SECONDS_PER_HOUR
            redo_s = moving.redo_h * SECONDS_PER_HOUR
            out.append(Migration(index, move.to_site, downtime_s, move.cost_cny, redo_s))
        if out:
            self.history = {
                k: dataclasses.replace(v, runs_ago=v.runs_ago + 1) for k, v in self.history.items()
            }
            for move in moves:
                self.history[move.job_id] = LastMove(
                    move.job_id, move.from_site, move.to_site, unix_s(now_s)
                )
            self.applied_runs += 1
        return out


def _checkpoint_gb(run: Run) -> float:
    return CHECKPOINT_GB_PER_CARD * run.job.count if run.job.kind == "training" else 0.0


def active_job(run: Run, now_s: float, capacity: Capacity) -> ActiveJob:
    """A running job as the rebalancing planner and its pricing see it: training jobs
    checkpoint hourly (CHECKPOINT_GB_PER_CARD per card), nothing else does."""
    spec = workload_spec(run.job)
    if run.job.kind == "training":
        checkpoint = Checkpoint(interval_hours=1.0, size_gb=_checkpoint_gb(run))
        spec = spec.model_copy(update={"checkpoint": checkpoint})
    pools = capacity.pools[run.site]
    model = pools[run.allocation[0][0]].model if run.allocation else ""
    return ActiveJob(
        job_id=run.job.job_id,
        spec=spec,
        site=run.site,
        elapsed_h=max(0.0, now_s - run.start_s) / SECONDS_PER_HOUR,
        accelerator=model,
        checkpointable=run.job.kind == "training",
    )
