"""What a move costs in time, priced the way the broker carries it out (docs/rebalancing.md).

The planner and the simulator both price a move with `move_time`, so a plan's cost and a
replay's downtime and redone work are the same numbers:

- a running job that checkpoints, moving between two sites that both move checkpoints (their
  agents announce a checkpoint store or transfer commands), is stopped with a checkpoint: it
  saves at the stop, so it redoes nothing; its cards idle while the checkpoint
  (`spec.checkpoint.size_gb`) crosses the path to the target and while it stops and restarts;
- a job that has not started yet, or a service (its work is serving, not accumulating), loses
  nothing: the stop and restart only;
- any other running job (a checkpointing one included, when either site cannot move its
  checkpoint) is stopped without a checkpoint and redoes its run so far;
- at a lost site nothing can be taken: the new attempt restores the checkpoint the job
  exported when its current attempt began (if any) or starts fresh, so it redoes the current
  attempt's run either way. Fetching that older checkpoint is not priced: where it lies is
  opaque to the broker.

The broker carries a move out with a checkpoint by the same rule (`with_checkpoint`), so a move
priced as a restart is a restart, not a fall-back. A move whose checkpoint still cannot be taken
or exported falls back to the source, costing the stop and restart only; the planner cannot
foresee that and prices the move it asked for.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
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


def sites_move_checkpoints(source: str, target: str, sites: AbstractSet[str] | None) -> bool:
    """True if a checkpoint can leave `source` and reach `target`: both are among `sites`, the
    sites whose agents move checkpoints (None: every site does)."""
    return sites is None or (source in sites and target in sites)


def with_checkpoint(
    job: ActiveJob, target: str, checkpoint_sites: AbstractSet[str] | None = None
) -> bool:
    """True if moving `job` to `target` stops it with a checkpoint: it checkpoints, has started,
    and both its site and the target move checkpoints."""
    return (
        job.can_checkpoint
        and job.elapsed_h > 0
        and sites_move_checkpoints(job.site, target, checkpoint_sites)
    )


def move_time(
    job: ActiveJob,
    target: str,
    topology: Topology,
    *,
    restart_overhead_h: float,
    source_lost: bool = False,
    checkpoint_sites: AbstractSet[str] | None = None,
) -> MoveTime:
    """The time moving `job` from its site to `target` costs (`checkpoint_sites`: the sites
    that move checkpoints, None: all)."""
    if not source_lost and with_checkpoint(job, target, checkpoint_sites):
        size_gb = job.spec.checkpoint.size_gb if job.spec.checkpoint is not None else 0.0
        transfer_h = topology.transfer_hours(job.site, target, size_gb)
        return MoveTime(0.0, size_gb, transfer_h, transfer_h + restart_overhead_h)
    # A job not started yet has run for 0 h: it redoes nothing either.
    redo_h = 0.0 if job.serving else job.elapsed_h
    return MoveTime(redo_h, 0.0, 0.0, restart_overhead_h)
