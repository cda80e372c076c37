"""What a move costs in time, priced the way the broker carries it out (docs/rebalancing.md).

The planner and the simulator both price a move with `move_time`, so a plan's cost and a
replay's downtime and redone work are the same numbers:

- a running job that checkpoints is stopped with a checkpoint: it saves at the stop, so it
  redoes nothing; its cards idle while the checkpoint (`spec.checkpoint.size_gb`) crosses the
  path to the target and while it stops and restarts;
- a job that has not started yet, or a service (its work is serving, not accumulating), loses
  nothing: the stop and restart only;
- any other running job is stopped without a checkpoint and redoes its run so far;
- at a lost site nothing can be taken: the new attempt restores the checkpoint the job
  exported when its current attempt began (if any) or starts fresh, so it redoes the current
  attempt's run either way. Fetching that older checkpoint is not priced: where it lies is
  opaque to the broker.

A move whose checkpoint cannot be taken or exported falls back to the source, costing the stop
and restart only; the planner cannot foresee it and prices the move it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.rebalance.model import ActiveJob
from topology import Topology


@dataclass(frozen=True, slots=True)
class MoveTime:
    """The time a move costs the job: work redone at the target and cards left idle."""

    redo_h: float
    """Work done before the move that the new attempt does again."""
    checkpoint_gb: float
    """Checkpoint carried from the source to the target (0: none moves)."""
    transfer_h: float
    """Hours to carry it over the widest path (inf: no path)."""
    idle_h: float
    """Hours the job's cards do no work: the transfer plus the stop and restart."""


def with_checkpoint(job: ActiveJob) -> bool:
    """True if a move stops the job with a checkpoint (it checkpoints and has started)."""
    return job.can_checkpoint and job.elapsed_h > 0


def move_time(
    job: ActiveJob,
    target: str,
    topology: Topology,
    *,
    restart_overhead_h: float,
    source_lost: bool = False,
) -> MoveTime:
    """The time moving `job` from its site to `target` costs."""
    if not source_lost and with_checkpoint(job):
        size_gb = job.spec.checkpoint.size_gb if job.spec.checkpoint is not None else 0.0
        transfer_h = topology.transfer_hours(job.site, target, size_gb)
        return MoveTime(0.0, size_gb, transfer_h, transfer_h + restart_overhead_h)
    # A job not started yet has run for 0 h: it redoes nothing either.
    redo_h = 0.0 if job.serving else job.elapsed_h
    return MoveTime(redo_h, 0.0, 0.0, restart_overhead_h)
