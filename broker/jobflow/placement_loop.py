"""The placement loop: each round places the pending queue jointly, then feeds the placements.

The pending queue is kept in memory from committed events, so a round costs nothing when
nothing changed: new jobs are tried as they arrive, and the whole queue is tried again when
capacity may have grown (a job ended, a site reported different capacity or came back).
A round solves the queue with the batch optimiser (`place_batch`, the code the simulator's
`optimal` policy runs) within a time budget; it falls back to greedy for what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broker.control import Allocation, Placed, PoolShare
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.placement import FederationSnapshot, JobDemand, Policy, place, place_batch
from broker.placement.runtime import run_hours
from broker.sites.registry import SiteRegistry
from broker.writer import StoreWriter
from computenet.spec import JobSpec
from computenet.types import Job, JobEvent, JobId, JobState, Placement, SiteId
from topology import Topology

log = logging.getLogger(__name__)

_PENDING = frozenset({JobState.PENDING})
SUBMITTED = "submitted"
NO_SITE_ACCEPTING = "waiting: no site is active"
RETRY_WAIT = "waiting to retry after a failed start"
MS_PER_HOUR = 3_600_000
EXPLAIN_SITES = 10
"""Feasible and rejected sites an explanation lists (each), so it stays small at any scale."""
EXPLAIN_CHUNK = 500


@dataclass
class LoopTiming:
    """How often the loops run when nothing wakes them, and how long a round may solve."""

    place_every_s: float = 1.0
    liveness_every_s: float = 0.25
    min_cycle_gap_s: float = 0.02
    round_budget_s: float = 0.5
    explain_budget_s: float = 0.25
    """Explanations written with the placements; the rest follow from a background task."""


@dataclass(frozen=True, slots=True)
class RoundStats:
    """What the last placement round did and how long its parts took."""

    candidates: int
    placed: int
    method: str
    gap: float
    snapshot_s: float
    solve_s: float
    explain_s: float
    write_s: float

    @property
    def total_s(self) -> float:
        """The whole round."""
        return self.snapshot_s + self.solve_s + self.explain_s + self.write_s


def placement_spec(job: Job) -> JobSpec:
    """The spec placement sees: the job's own, with the sites that could not launch it excluded."""
    failed = job.failed_sites
    if not failed:
        return job.spec
    constraints = job.spec.constraints
    excluded = tuple(dict.fromkeys([*constraints.excluded_sites, *sorted(failed)]))
    return job.spec.model_copy(
        update={"constraints": constraints.model_copy(update={"excluded_sites": excluded})}
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def placement_to_json(placement: Placement) -> str:
    """The stored form of a placement explanation."""
    return json.dumps({**placement.to_dict(), "decision_ms": placement.decision_ms})


def allocation_for(
    spec: JobSpec, site: SiteId, pool: str, now_ms: int, *, topology: Topology | None = None
) -> Allocation:
    """What an attempt of `spec` holds when placed in `pool` at `site` (all replicas).

    The hold is expected to end after the job's run time on that pool's model (its duration
    on its reference model over the model's speed, when `topology` is given).
    """
    hours = spec.duration_hours or 0.0
    if topology is not None and hours:
        hours = run_hours(JobDemand.from_spec(spec), topology, pool)
    return Allocation(
        site=site,
        shares=(PoolShare(pool if spec.accelerators_total else "", spec.accelerators_total),),
        cpu_cores=spec.cpu_cores_total,
        memory_gb=spec.memory_gb_total,
        expected_end_unix_ms=now_ms + int(hours * MS_PER_HOUR) if hours else 0,
    )


class PlacementLoop:
    """Places pending jobs on ledger snapshots and feeds `Placed` stimuli to the driver."""

    def __init__(
        self,
        *,
        writer: StoreWriter,
        registry: SiteRegistry,
        capacity: CapacityView,
        driver: JobDriver,
        policy: Policy,
        timing: LoopTiming | None = None,
        on_decision: Callable[[float], None] | None = None,
    ) -> None:
        self._writer = writer
        self._registry = registry
        self._capacity = capacity
        self._driver = driver
        self._policy = policy
        self._timing = timing or LoopTiming()
        self._on_decision = on_decision
        self._wake = asyncio.Event()
        self._pending: dict[JobId, Job | None] = {}
        self._fresh: set[JobId] = set()
        self._backing_off: dict[JobId, int] = {}
        """Pending jobs waiting out a retry backoff: the time (Unix ms) they may be placed."""
        self._capacity_changed = True
        self.pending_reasons: dict[str, str] = {}
        self.last_round: RoundStats | None = None
        self._explaining: set[asyncio.Task[None]] = set()

    def kick(self) -> None:
        """Run a placement round soon."""
        self._wake.set()

    def capacity_changed(self) -> None:
        """Capacity may have grown: retry the whole pending queue at the next round."""
        self._capacity_changed = True
        self._wake.set()

    def adopt(self, jobs: Sequence[Job]) -> None:
        """Newly submitted jobs, as committed: queue them without reading them back."""
        for job in jobs:
            self._pending[job.job_id] = job
            self._fresh.add(job.job_id)

    def observe(self, events: Sequence[JobEvent]) -> None:
        """Follow committed events: keep the pending queue, notice freed capacity."""
        for event in events:
            if event.state == JobState.PENDING:
                if event.cause != SUBMITTED or event.job_id not in self._pending:
                    self._pending[event.job_id] = None  # (re)load: its attempt changed
                if event.cause != SUBMITTED:
                    self._capacity_changed = True  # a requeue released the job's holds
                self._fresh.add(event.job_id)
            else:
                self._pending.pop(event.job_id, None)
                self._fresh.discard(event.job_id)
                self._backing_off.pop(event.job_id, None)
                self.pending_reasons.pop(event.job_id, None)
            if event.state.is_final and event.site is not None:
                self._capacity_changed = True
        self._wake.set()

    async def load_pending(self) -> None:
        """Read the pending queue from the store (at start)."""
        store = self._writer.store
        for job in await self._writer.read(lambda: store.jobs_in_states(_PENDING)):
            self._pending[job.job_id] = job
            self._fresh.add(job.job_id)

    async def _candidates(self) -> list[Job]:
        """The pending jobs worth trying now, highest priority first, oldest first.

        A job waiting out a retry backoff is set aside until its time comes.
        """
        now_ms = _now_ms()
        due = [i for i, at in self._backing_off.items() if at <= now_ms]
        for job_id in due:
            del self._backing_off[job_id]
        ids = list(self._pending) if self._capacity_changed else [*self._fresh, *due]
        self._capacity_changed = False
        self._fresh.clear()
        missing = [i for i in ids if self._pending.get(i) is None and i in self._pending]
        if missing:
            store = self._writer.store
            found = await self._writer.read(functools.partial(store.get_jobs, missing))
            for job in found:
                if job.job_id in self._pending and job.state == JobState.PENDING:
                    self._pending[job.job_id] = job
            # Read back and no longer pending (an event seen late, e.g. from another
            # replica's feed, after the job moved on): nothing to place.
            for job_id in set(missing) - {j.job_id for j in found if j.state == JobState.PENDING}:
                if self._pending.get(job_id) is None:
                    self._pending.pop(job_id, None)
        jobs = [j for i in dict.fromkeys(ids) if (j := self._pending.get(i)) is not None]
        ready = []
        for job in jobs:
            if job.not_before_unix_ms > now_ms:
                self._backing_off[job.job_id] = job.not_before_unix_ms
                wait_s = (job.not_before_unix_ms - now_ms) / 1000
                self.pending_reasons[job.job_id] = f"{RETRY_WAIT}: next try in {wait_s:.1f} s"
            else:
                ready.append(job)
        ready.sort(key=lambda j: (-j.spec.priority, j.created_unix_ms))
        return ready

    def next_retry_in_s(self) -> float | None:
        """Seconds until the first job waiting out a backoff may be placed; None if none waits."""
        if not self._backing_off:
            return None
        return max(0.0, (min(self._backing_off.values()) - _now_ms()) / 1000)

    def _anyone_accepting(self) -> bool:
        return self._registry.active_sites > 0

    async def place_pending(self) -> int:
        """One placement round; returns how many jobs were placed."""
        if not self._anyone_accepting():
            # Nothing can be placed; keep the queue as it is until a site becomes active.
            for job_id in self._fresh:
                self.pending_reasons[job_id] = NO_SITE_ACCEPTING
            self._fresh.clear()
            self._capacity_changed = True
            return 0
        candidates = await self._candidates()
        if not candidates:
            return 0
        started = time.perf_counter()
        queue = [j.spec for j in self._pending.values() if j is not None]
        snapshot = await self._capacity.snapshot(queue)
        snapped = time.perf_counter()
        result = await asyncio.to_thread(
            place_batch,
            [(j.job_id, placement_spec(j)) for j in candidates],
            snapshot,
            self._policy,
            time_budget_s=self._timing.round_budget_s,
            pool_totals=self._capacity.pool_totals(),
        )
        solved = time.perf_counter()
        if self._on_decision is not None:
            self._on_decision(1000.0 * result.solve_s / len(candidates))
        now_ms = int(time.time() * 1000)
        explainer = _Explainer(snapshot, self._policy, solved + self._timing.explain_budget_s)
        pairs = []
        for job in candidates:
            site = result.assignment.get(job.job_id)
            if site is None:
                self.pending_reasons[job.job_id] = result.reasons.get(job.job_id, "")
                continue
            self.pending_reasons.pop(job.job_id, None)
            allocation = allocation_for(
                job.spec,
                SiteId(site),
                result.models.get(job.job_id, ""),
                now_ms,
                topology=snapshot.topology,
            )
            why = explainer.now_or_later(job, SiteId(site), allocation.pool, result.method)
            pairs.append((job, Placed(allocation, placement_json=why)))
        explained_at = time.perf_counter()
        outcomes = await self._driver.feed_many(pairs)
        placed = sum(1 for o in outcomes if o.applied)
        if explainer.later:
            task = asyncio.create_task(self._explain_later(explainer))
            self._explaining.add(task)
            task.add_done_callback(self._explaining.discard)
        self.last_round = RoundStats(
            candidates=len(candidates),
            placed=placed,
            method=result.method,
            gap=result.gap,
            snapshot_s=snapped - started,
            solve_s=solved - snapped,
            explain_s=explained_at - solved,
            write_s=time.perf_counter() - explained_at,
        )
        log.info(
            "placement round candidates=%d placed=%d method=%s solve_s=%.3f gap=%.4f",
            len(candidates),
            placed,
            result.method,
            result.solve_s,
            result.gap,
        )
        return placed

    async def run(self, stop: asyncio.Event) -> None:
        """Run placement rounds until `stop` is set."""
        await self.load_pending()
        while not stop.is_set():
            wait_s = self._timing.place_every_s
            retry_in_s = self.next_retry_in_s()
            if retry_in_s is not None:
                wait_s = min(wait_s, retry_in_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
            self._wake.clear()
            try:
                await self.place_pending()
            except Exception:  # the loop must survive a bad round; the next one retries all
                log.exception("placement round failed")
                self._capacity_changed = True
                await asyncio.sleep(self._timing.place_every_s)
            # Let arrivals gather into the next round instead of one round per submission.
            await asyncio.sleep(self._timing.min_cycle_gap_s)

    async def _explain_later(self, explainer: _Explainer) -> None:
        """Write the explanations a large round deferred, a chunk at a time."""
        store = self._writer.store
        try:
            while explainer.later:
                chunk = explainer.later[:EXPLAIN_CHUNK]
                del explainer.later[:EXPLAIN_CHUNK]
                items = await asyncio.to_thread(explainer.explain_all, chunk)
                await self._writer.write(functools.partial(store.save_explanations, items))
        except Exception:  # explanations are advisory; the placements stand
            log.exception("deferred explanations failed")


def _shape(spec: JobSpec) -> tuple[object, ...]:
    """What decides where a job fits and what it costs: equal shapes share an explanation."""
    return (
        spec.resources,
        spec.inference,
        spec.constraints,
        spec.dataset,
        spec.gang,
        spec.duration_hours,
        spec.checkpoint,
    )


class _Explainer:
    """Explanations of one round: computed inline until a deadline, then left for later.

    Each explanation lists the best EXPLAIN_SITES feasible sites and EXPLAIN_SITES rejected
    ones against the round's snapshot, with the site the joint solve chose. Jobs of one shape
    share one evaluation.
    """

    def __init__(self, snapshot: FederationSnapshot, policy: Policy, deadline: float) -> None:
        self._snapshot = snapshot
        self._policy = policy
        self._deadline = deadline
        self._seen: dict[tuple[object, ...], Placement] = {}
        self._texts: dict[tuple[tuple[object, ...], SiteId], str] = {}
        self.later: list[tuple[Job, SiteId]] = []

    def now_or_later(self, job: Job, site: SiteId, pool: str, method: str) -> str:
        """The explanation to store with the placement (a short one if it is deferred)."""
        spec = placement_spec(job)
        if time.perf_counter() < self._deadline or _shape(spec) in self._seen:
            return self.text(spec, site)
        self.later.append((job, site))
        return json.dumps(
            {"chosen": site, "pool": pool, "method": method, "candidates": [], "deferred": True}
        )

    def explain(self, spec: JobSpec, chosen: SiteId) -> Placement:
        """Every listed candidate's verdict and costs, with the joint choice."""
        key = _shape(spec)
        base = self._seen.get(key)
        if base is None:
            base = self._seen[key] = place(
                spec, self._snapshot, self._policy, explain_limit=EXPLAIN_SITES
            )
        return Placement(chosen=chosen, candidates=base.candidates, decision_ms=base.decision_ms)

    def text(self, spec: JobSpec, chosen: SiteId) -> str:
        """The stored form of `explain`, shared by jobs of one shape placed at one site."""
        key = (_shape(spec), chosen)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = placement_to_json(self.explain(spec, chosen))
        return text

    def explain_all(self, jobs: list[tuple[Job, SiteId]]) -> list[tuple[JobId, int, str]]:
        """Explanations of deferred jobs, keyed by the attempt they were placed as."""
        return [
            (job.job_id, job.attempt + 1, self.text(placement_spec(job), site))
            for job, site in jobs
        ]
