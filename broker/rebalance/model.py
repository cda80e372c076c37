"""What a rebalancing run plans over (jobs, demand, move history) and the moves it proposes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from broker.placement import FederationSnapshot, Policy
from computenet.rebalance_types import MoveKind
from computenet.spec import JobSpec

__all__ = ["ActiveJob", "LastMove", "Move", "MoveKind", "PendingJob", "RebalanceInput"]


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """A job holding capacity at a site (placed, dispatched or running).

    `elapsed_h` is the run time so far (0 for a job not started yet); the remaining run is
    `duration_hours - elapsed_h`. `accelerator` is the pool model it holds at its site; empty
    means the spec's model (or the site's first pool when the spec names none).
    """

    job_id: str
    spec: JobSpec
    site: str
    elapsed_h: float = 0.0
    accelerator: str = ""
    checkpointable: bool | None = None

    @property
    def remaining_h(self) -> float:
        """Hours of work left, never negative."""
        return max(0.0, self.spec.duration_hours - self.elapsed_h)

    @property
    def can_checkpoint(self) -> bool:
        """True if the job can stop with a checkpoint and resume elsewhere."""
        if self.checkpointable is not None:
            return self.checkpointable
        return self.spec.checkpoint is not None

    @property
    def serving(self) -> bool:
        """True for inference services."""
        return self.spec.inference is not None


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting for capacity."""

    job_id: str
    spec: JobSpec


@dataclass(frozen=True, slots=True)
class LastMove:
    """The most recent applied move of a job, the input of anti-flapping.

    `runs_ago` counts applied (not dry) runs since the move: 0 is the latest run.
    """

    job_id: str
    from_site: str | None
    to_site: str
    at_unix_s: float
    runs_ago: int = 0


@dataclass(frozen=True, slots=True)
class RebalanceInput:
    """Everything a run decides on, read once at its start.

    `snapshot.sites` carries each site's status (draining and lost sites included) and the
    capacity free now; `demand` maps an inference job to its users' current region weights;
    `checkpoint_sites` are the sites whose agents send and receive checkpoints of moved jobs
    (None: every site does, as in the simulator).
    """

    snapshot: FederationSnapshot
    active: Sequence[ActiveJob] = ()
    pending: Sequence[PendingJob] = ()
    demand: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    history: Mapping[str, LastMove] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy.default)
    checkpoint_sites: AbstractSet[str] | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """One proposed move with its expected savings over the remaining run and its one-off cost.

    `savings_cny` already counts carbon at the policy's carbon price; `savings_carbon_kg` states
    the same carbon in kg. `cost_cny` is what the move itself costs (idle cards during checkpoint
    transfer, restart and queueing, transfer fees, dataset movement). `accelerator` is the pool
    model taken at `to_site`.
    """

    job_id: str
    kind: MoveKind
    from_site: str | None
    to_site: str
    savings_cny: float
    savings_carbon_kg: float
    cost_cny: float
    reason: str
    accelerator: str = ""

    @property
    def net_cny(self) -> float:
        """Expected savings minus the cost of the move."""
        return self.savings_cny - self.cost_cny
