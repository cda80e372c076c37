"""The discrete-event replay: jobs arrive, queue, hold cards for their duration and finish."""

from __future__ import annotations

import heapq
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from broker.simulate.capacity import Allocation, Capacity
from broker.simulate.clock import DEFAULT_WINDOW_S, decision_instant
from broker.simulate.jobs import SimJob
from broker.simulate.policy_base import SimPolicy

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Run:
    """Where and when one job ran."""

    job: SimJob
    site: str
    allocation: Allocation
    start_s: float
    decision_ms: float

    @property
    def end_s(self) -> float:
        """When the job finished and gave its cards back."""
        return self.start_s + self.job.duration_s

    @property
    def wait_s(self) -> float:
        """Seconds from submission to start."""
        return self.start_s - self.job.submit_s


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Every job that ran, the jobs still queued when events ran out, and the final instant."""

    runs: tuple[Run, ...]
    stranded: tuple[SimJob, ...]
    unplaceable: tuple[SimJob, ...]
    end_s: float
    wall_s: float


def _queue_key(job: SimJob, seq: int) -> tuple[int, float, int]:
    return (-job.priority, job.submit_s, seq)


def never_fits(job: SimJob, capacity: Capacity) -> bool:
    """True if no site could ever give the job its cards, even with everything free."""
    for pools in capacity.pools.values():
        usable = [p.cards for p in pools if not job.accelerator or p.model == job.accelerator]
        if (max(usable, default=0) if job.gang else sum(usable)) >= job.count and usable:
            return False
    return True


def replay(
    jobs: Sequence[SimJob],
    capacity: Capacity,
    policy: SimPolicy,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    progress: bool = False,
) -> ReplayResult:
    """Replay `jobs` (any order) against `capacity` with `policy` deciding at each instant.

    Decisions happen at window ends (multiples of `window_s`) in which a job arrived or a job
    finished; finished jobs give their cards back at their exact end time. The queue is served
    by priority, then arrival: the policy sees every queued job in that order and may start any
    that fit (so small jobs backfill behind a blocked large one). Jobs too big for any pool at
    this capacity are set aside as unplaceable and never queued.
    """
    started = time.perf_counter()
    ordered = sorted(enumerate(jobs), key=lambda item: (item[1].submit_s, item[0]))
    unplaceable = tuple(job for _, job in ordered if never_fits(job, capacity))
    skip = {job.job_id for job in unplaceable}
    arrivals = [(seq, job) for seq, job in ordered if job.job_id not in skip]
    running: list[tuple[float, int, str, Allocation]] = []
    queue: list[tuple[tuple[int, float, int], SimJob]] = []
    runs: list[Run] = []
    cursor, now, last_report = 0, 0.0, started
    while cursor < len(arrivals) or running:
        next_arrival = (
            decision_instant(arrivals[cursor][1].submit_s, window_s)
            if cursor < len(arrivals)
            else None
        )
        next_release = decision_instant(running[0][0], window_s) if running else None
        now = min(t for t in (next_arrival, next_release) if t is not None)
        while running and running[0][0] <= now:
            _, _, site, allocation = heapq.heappop(running)
            capacity.give_back(site, allocation)
        while (
            cursor < len(arrivals)
            and decision_instant(arrivals[cursor][1].submit_s, window_s) <= now
        ):
            seq, job = arrivals[cursor]
            queue.append((_queue_key(job, seq), job))
            cursor += 1
        if not queue:
            continue
        queue.sort(key=lambda item: item[0])
        starts = policy.decide([job for _, job in queue], capacity, now)
        begun = {start.job.job_id for start in starts}
        for start in starts:
            run = Run(start.job, start.site, start.allocation, now, start.decision_ms)
            runs.append(run)
            heapq.heappush(running, (run.end_s, len(runs), start.site, start.allocation))
        if begun:
            queue = [item for item in queue if item[1].job_id not in begun]
        if progress and time.perf_counter() - last_report > PROGRESS_EVERY_S:
            last_report = time.perf_counter()
            print(
                f"  {policy.name}: t={now / 86400:.1f} d, {cursor}/{len(arrivals)} arrived, "
                f"{len(runs)} started, {len(queue)} queued",
                file=sys.stderr,
                flush=True,
            )
    return ReplayResult(
        runs=tuple(runs),
        stranded=tuple(job for _, job in queue),
        unplaceable=unplaceable,
        end_s=now,
        wall_s=time.perf_counter() - started,
    )
