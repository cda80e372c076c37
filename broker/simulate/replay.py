"""The discrete-event replay: jobs arrive, queue, hold cards for their duration and finish."""

from __future__ import annotations

import heapq
import logging
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from broker.simulate.capacity import Allocation, Capacity
from broker.simulate.clock import DEFAULT_WINDOW_S, decision_instant
from broker.simulate.policy_base import SimPolicy
from computenet.workload import WorkloadJob

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Run:
    """Where and when one job ran."""

    job: WorkloadJob
    site: str
    allocation: Allocation
    start_s: float
    decision_ms: float
    resumed: bool = False
    """True for the rest of a job after a rebalancing run moved it (not a new job)."""
    speed: float = 1.0
    """Throughput of the cards it got relative to the job's reference model."""

    @property
    def run_s(self) -> float:
        """Seconds the job held its cards: its reference duration over the cards' speed."""
        return self.job.duration_s / self.speed

    @property
    def hours(self) -> float:
        """Hours the job held its cards."""
        return self.run_s / 3600.0

    @property
    def end_s(self) -> float:
        """When the job finished and gave its cards back."""
        return self.start_s + self.run_s

    @property
    def wait_s(self) -> float:
        """Seconds from submission to start."""
        return self.start_s - self.job.submit_s


@dataclass(frozen=True, slots=True)
class Migration:
    """A rebalancing move of a running job: its rest restarts at `site` after `downtime_s`.

    `redo_s` of the work done before the move is done again at `site` (0 when the job stopped
    with a checkpoint; all of it when it stopped without one).
    """

    run_index: int
    site: str
    downtime_s: float
    cost_cny: float
    redo_s: float = 0.0


class Rebalancer(Protocol):
    """Decides, at a rebalancing instant, which running jobs move where."""

    every_s: float

    def plan(
        self, running: Sequence[tuple[int, Run]], capacity: Capacity, now_s: float
    ) -> list[Migration]:
        """Moves of the given (run index, run) pairs; `capacity` is free capacity now."""
        ...


@dataclass(frozen=True, slots=True)
class Preemption:
    """A running job stopped at an instant to give its cards back; its rest is queued again.

    The rest redoes `redo_s` (seconds on the cards it held) of the work done and spends
    `overhead_s` restarting, both priced as a rebalancing move prices them.
    """

    run_index: int
    tenant: str
    cards: int
    redo_s: float
    overhead_s: float
    reason: str


Offer = tuple[WorkloadJob, str]
"""A job offered to the policy and the id of the queued job it stands for."""


class Admission(Protocol):
    """Decides, at each decision instant, which queued jobs the policy may start and in what
    order (tenancy: broker.simulate.tenancy)."""

    def admit(
        self,
        queue: Sequence[WorkloadJob],
        running: Sequence[Run],
        capacity: Capacity,
        now_s: float,
    ) -> list[Offer]:
        """The jobs of `queue` offered to the policy now, in the order to offer them, each
        with its queued job's id (an offered job may be a copy narrowed to fewer models);
        `running` holds cards now."""
        ...

    def reclaim(
        self,
        started: Collection[str],
        running: Sequence[tuple[int, Run]],
        capacity: Capacity,
        now_s: float,
    ) -> list[Preemption]:
        """Running jobs (by run index) to stop now for the jobs of the last `admit` that did
        not start (`started`: ids of those that did)."""
        ...


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Every job that ran, the jobs still queued when events ran out, and the final instant."""

    runs: tuple[Run, ...]
    stranded: tuple[WorkloadJob, ...]
    unplaceable: tuple[WorkloadJob, ...]
    end_s: float
    wall_s: float
    migrations: tuple[Migration, ...] = ()
    rebalance_runs: int = 0
    preemptions: tuple[Preemption, ...] = ()
    requeued: tuple[WorkloadJob, ...] = ()
    """Rests of preempted jobs still queued when events ran out (not in `stranded`: their jobs
    ran, in part)."""


def _queue_key(job: WorkloadJob, seq: int) -> tuple[int, float, int]:
    return (-job.priority, job.submit_s, seq)


def never_fits(job: WorkloadJob, capacity: Capacity) -> bool:
    """True if no site could ever give the job its cards, even with everything free."""
    return capacity.never_fits(job)


def replay(
    jobs: Sequence[WorkloadJob],
    capacity: Capacity,
    policy: SimPolicy,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    progress: bool = False,
    rebalancer: Rebalancer | None = None,
    admission: Admission | None = None,
) -> ReplayResult:
    """Replay `jobs` (any order) against `capacity` with `policy` deciding at each instant.

    Decisions happen at window ends (multiples of `window_s`) in which a job arrived or a job
    finished; finished jobs give their cards back at their exact end time. The queue is served
    by priority, then arrival: the policy sees every queued job in that order and may start any
    that fit (so small jobs backfill behind a blocked large one). Jobs too big for any pool at
    this capacity are set aside as unplaceable and never queued. With a `rebalancer`, every
    `every_s` while jobs run it may move running jobs: the moved run ends at that instant and
    its rest runs at the target (a `resumed` run) after the move's downtime. With an
    `admission`, the policy sees only the queued jobs it admits, in its order.
    """
    started = time.perf_counter()
    ordered = sorted(enumerate(jobs), key=lambda item: (item[1].submit_s, item[0]))
    unplaceable = tuple(job for _, job in ordered if never_fits(job, capacity))
    skip = {job.job_id for job in unplaceable}
    arrivals = [(seq, job) for seq, job in ordered if job.job_id not in skip]
    running: list[tuple[float, int, str, Allocation]] = []
    queue: list[tuple[tuple[int, float, int], WorkloadJob]] = []
    runs: list[Run] = []
    moved: set[int] = set()
    migrations: list[Migration] = []
    every_s = rebalancer.every_s if rebalancer is not None else 0.0
    next_rebalance = every_s if every_s > 0 else None
    rebalance_runs = 0
    preemptions: list[Preemption] = []
    requeued: set[str] = set()
    wake: float | None = None
    """The instant after a preemption: the freed cards are placed then, as in the next round."""
    cursor, now, last_report = 0, 0.0, started
    while cursor < len(arrivals) or running or wake is not None:
        next_arrival = (
            decision_instant(arrivals[cursor][1].submit_s, window_s)
            if cursor < len(arrivals)
            else None
        )
        next_release = decision_instant(running[0][0], window_s) if running else None
        rebalance_at = next_rebalance if running else None
        now = min(t for t in (next_arrival, next_release, rebalance_at, wake) if t is not None)
        wake = None if wake is not None and wake <= now else wake
        while running and running[0][0] <= now:
            _, seq, site, allocation = heapq.heappop(running)
            if seq not in moved:
                capacity.give_back(site, allocation)
        if rebalancer is not None and next_rebalance is not None and now >= next_rebalance:
            if running:
                active = [(seq - 1, runs[seq - 1]) for _, seq, _, _ in running if seq not in moved]
                for move in rebalancer.plan(active, capacity, now):
                    rest = _migrate(runs, move, capacity, now)
                    if rest is not None:
                        moved.add(move.run_index + 1)
                        migrations.append(move)
                        runs.append(rest)
                        heapq.heappush(running, (rest.end_s, len(runs), rest.site, rest.allocation))
                rebalance_runs += 1
            next_rebalance = (now // every_s + 1) * every_s
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
        queued = [job for _, job in queue]
        by_id = {job.job_id: job for job in queued}
        offers: list[Offer] = [(job, job.job_id) for job in queued]
        if admission is not None:
            holding = [runs[seq - 1] for _, seq, _, _ in running if seq not in moved]
            offers = admission.admit(queued, holding, capacity, now)
        as_queued = {offered.job_id: by_id[queued_id] for offered, queued_id in offers}
        starts = policy.decide([offered for offered, _ in offers], capacity, now)
        begun = {as_queued[start.job.job_id].job_id for start in starts}
        for start in starts:
            job = as_queued[start.job.job_id]  # as submitted, not as admission narrowed it
            speed = capacity.speed(start.site, start.allocation, job)
            resumed = job.job_id in requeued
            run = Run(job, start.site, start.allocation, now, start.decision_ms, resumed, speed)
            runs.append(run)
            heapq.heappush(running, (run.end_s, len(runs), start.site, start.allocation))
        if begun:
            queue = [item for item in queue if item[1].job_id not in begun]
        if admission is not None:
            holding_at = [(seq - 1, runs[seq - 1]) for _, seq, _, _ in running if seq not in moved]
            for cut in admission.reclaim(begun, holding_at, capacity, now):
                remainder = _preempt(runs, cut, capacity, now)
                moved.add(cut.run_index + 1)
                preemptions.append(cut)
                requeued.add(remainder.job_id)
                queue.append((_queue_key(remainder, len(jobs) + len(preemptions)), remainder))
                wake = now + window_s
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
        stranded=tuple(job for _, job in queue if job.job_id not in requeued),
        unplaceable=unplaceable,
        end_s=now,
        wall_s=time.perf_counter() - started,
        migrations=tuple(migrations),
        rebalance_runs=rebalance_runs,
        preemptions=tuple(preemptions),
        requeued=tuple(job for _, job in queue if job.job_id in requeued),
    )


def _preempt(runs: list[Run], cut: Preemption, capacity: Capacity, now: float) -> WorkloadJob:
    """Stop the run at `now`, give its cards back and return the rest of its job to queue."""
    old = runs[cut.run_index]
    capacity.give_back(old.site, old.allocation)
    # work is counted in reference seconds: what ran at the old cards' speed
    done_s = min(max(0.0, now - old.start_s) * old.speed, old.job.duration_s)
    runs[cut.run_index] = replace(old, job=replace(old.job, duration_s=done_s))
    redo_s = min(cut.redo_s * old.speed, done_s)
    rest_s = old.job.duration_s - done_s + redo_s + cut.overhead_s * old.speed
    return replace(old.job, duration_s=rest_s)


def _migrate(runs: list[Run], move: Migration, capacity: Capacity, now: float) -> Run | None:
    """Cut the moved run at `now` and return the rest at the target (None if it does not fit)."""
    old = runs[move.run_index]
    job = old.job
    allocation = capacity.fit(move.site, job)
    if allocation is None or old.end_s <= now:
        return None
    capacity.give_back(old.site, old.allocation)
    capacity.take(move.site, allocation)
    # work is counted in reference seconds: what ran at the old cards' speed
    done_s = max(0.0, now - old.start_s) * old.speed
    runs[move.run_index] = replace(old, job=replace(job, duration_s=done_s))
    redo_s = min(move.redo_s * old.speed, done_s)
    rest = replace(job, duration_s=job.duration_s - done_s + redo_s)
    speed = capacity.speed(move.site, allocation, job)
    return Run(rest, move.site, allocation, now + move.downtime_s, 0.0, resumed=True, speed=speed)
