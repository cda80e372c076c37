"""The contract between the replay loop and placement policies, and the helpers they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from broker.simulate.capacity import Allocation, Capacity
from computenet.workload import WorkloadJob


@dataclass(frozen=True, slots=True)
class Start:
    """A policy's decision to start a queued job now at `site` with `allocation` held."""

    job: WorkloadJob
    site: str
    allocation: Allocation
    decision_ms: float


@dataclass(slots=True)
class BatchStats:
    """Objective and LP bound summed over the joint solves of a replay (optimal policy only)."""

    objective_cny: float = 0.0
    lp_bound_cny: float = 0.0
    batches: int = 0
    max_gap: float = 0.0
    methods: dict[str, int] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        """(sum of objectives - sum of LP bounds) / |sum of bounds|, place_batch's gap over all."""
        if self.batches == 0:
            return None
        excess = self.objective_cny - self.lp_bound_cny
        return max(0.0, excess) / max(abs(self.lp_bound_cny), 1.0)


class SimPolicy(Protocol):
    """Decides which queued jobs start now and where; takes the cards from `capacity` itself.

    `queue` is in service order (priority, then arrival). A policy may start any subset; the
    jobs it leaves wait and are offered again at the next instant where capacity changed.
    """

    name: str

    def decide(self, queue: Sequence[WorkloadJob], capacity: Capacity, now_s: float) -> list[Start]:
        """Start jobs at simulated time `now_s`."""
        ...

    def batch_stats(self) -> BatchStats | None:
        """LP-gap statistics for joint policies; None for one-at-a-time policies."""
        ...


def _shape(job: WorkloadJob, scope: str) -> tuple[str, tuple[str, ...], bool, str]:
    """What decides whether a job of some size fits: the models it accepts and gang-ness."""
    return (job.accelerator, job.accelerators, job.gang, scope)


class Blocked:
    """Remembers, within one decision instant, job shapes that found no room.

    A job needing at least as many cards of the same kind of pool as one that did not fit
    cannot fit either, so it is skipped without a search. `scope` separates jobs whose
    feasibility depends on more than size (an inference job's user region under an SLO).
    """

    def __init__(self) -> None:
        self._smallest: dict[tuple[str, tuple[str, ...], bool, str], int] = {}

    def skip(self, job: WorkloadJob, scope: str = "") -> bool:
        """True if a no-larger job of the same shape already failed."""
        smallest = self._smallest.get(_shape(job, scope))
        return smallest is not None and job.count >= smallest

    def fail(self, job: WorkloadJob, scope: str = "") -> None:
        """Record that `job` found no room."""
        key = _shape(job, scope)
        self._smallest[key] = min(job.count, self._smallest.get(key, job.count))
