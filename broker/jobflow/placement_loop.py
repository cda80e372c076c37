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
from dataclasses import dataclass, field

from broker.control import Allocation, Placed, PoolShare
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.reclaim import Reclaimer
from broker.jobflow.tenant_usage import TenantUsageTracker
from broker.jobflow.tenant_views import demand_of, free_capacity, model_totals, queue_view
from broker.placement import FederationSnapshot, Policy, place, place_batch
from broker.sites.registry import SiteRegistry
from broker.store.protocol import Hold
from broker.tenancy import (
    FreeCapacity,
    JobDemand,
    QueueEntry,
    TenantRow,
    TenantsTable,
    UsageSnapshot,
    Waiting,
    WaitReason,
    admit_round,
    pending_order,
    tenant_rows,
)
from broker.writer import StoreWriter
from computenet.spec import JobSpec
from computenet.types import Job, JobEvent, JobId, JobState, Placement, SiteId

log = logging.getLogger(__name__)

_PENDING = frozenset({JobState.PENDING})
SUBMITTED = "submitted"
NO_SITE_ACCEPTING = "waiting: no site is active"
RETRY_WAIT = "waiting to retry after a failed start"
MS_PER_HOUR = 3_600_000
EXPLAIN_SITES = 10
"""Feasible and rejected sites an explanation lists (each), so it stays small at any scale."""
EXPLAIN_CHUNK = 500
_PLACER_EXPLAINS = frozenset({WaitReason.NO_CAPACITY, WaitReason.SITE_DRAINING})


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


def placement_spec(job: Job, model: str = "") -> JobSpec:
    """The spec placement sees: the job's own, with the sites that could not launch it excluded
    and, for a job of any model, the `model` admission counted it against (if given)."""
    spec = job.spec
    if model and not spec.resources.accelerator:
        spec = spec.model_copy(
            update={"resources": spec.resources.model_copy(update={"accelerator": model})}
        )
    failed = job.failed_sites
    if not failed:
        return spec
    constraints = spec.constraints
    excluded = tuple(dict.fromkeys([*constraints.excluded_sites, *sorted(failed)]))
    return spec.model_copy(
        update={"constraints": constraints.model_copy(update={"excluded_sites": excluded})}
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def placement_to_json(placement: Placement) -> str:
    """The stored form of a placement explanation."""
    return json.dumps({**placement.to_dict(), "decision_ms": placement.decision_ms})


def allocation_for(spec: JobSpec, site: SiteId, pool: str, now_ms: int) -> Allocation:
    """What an attempt of `spec` holds when placed in `pool` at `site` (all replicas)."""
    hours = spec.duration_hours or 0.0
    return Allocation(
        site=site,
        shares=(PoolShare(pool if spec.accelerators_total else "", spec.accelerators_total),),
        cpu_cores=spec.cpu_cores_total,
        memory_gb=spec.memory_gb_total,
        expected_end_unix_ms=now_ms + int(hours * MS_PER_HOUR) if hours else 0,
    )


@dataclass(slots=True)
class _Admission:
    """One round's admission: what it decided on, the admitted jobs and their pinned models."""

    table: TenantsTable
    holds: list[Hold]
    free: FreeCapacity
    ordered: list[JobDemand]
    admitted: list[Job] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    explained: list[Job] = field(default_factory=list)
    """Jobs waiting for cards that are not there: given to the placer for its reasons only."""


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
        tenants: Callable[[], TenantsTable] | None = None,
        on_preempted: Callable[[str], None] | None = None,
    ) -> None:
        """`tenants` gives the tenants table for each round (re-read from the config file);
        `on_preempted` is told the tenant of every job preempted to reclaim cards."""
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
        self.pending_kinds: dict[str, WaitReason] = {}
        """Why pending jobs wait, by kind, where the tenancy core or the placer said."""
        self._tenants = tenants or TenantsTable
        self.usage = TenantUsageTracker(writer)
        self._reclaimer = Reclaimer(driver, on_preempted=on_preempted)
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
                self.pending_kinds.pop(event.job_id, None)
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
                self.pending_kinds.pop(job.job_id, None)
            else:
                ready.append(job)
        ready.sort(key=lambda j: (-j.spec.priority, j.created_unix_ms))
        return ready

    async def _admit(
        self, candidates: list[Job], snapshot: FederationSnapshot, holds: list[Hold]
    ) -> _Admission:
        """Order the candidates by fair share and admit those within their tenants' quota plus
        borrowing limit and the idle cards; the others get their reason."""
        table = self._tenants()
        await self.usage.learn(holds)
        usage = self.usage.snapshot(holds, model_totals(self._capacity.pool_totals()), table)
        free = free_capacity(snapshot)
        ordered = pending_order([demand_of(j, table) for j in candidates], table, usage)
        by_id = {j.job_id: j for j in candidates}
        admission = _Admission(table=table, holds=holds, free=free, ordered=ordered)
        for demand, decision in admit_round(ordered, table, usage, free):
            if isinstance(decision, Waiting):
                self.pending_reasons[demand.job_id] = decision.text
                self.pending_kinds[demand.job_id] = decision.reason
                if decision.reason in _PLACER_EXPLAINS:
                    # Fewer idle cards of its model than it asks, in the whole federation:
                    # the placer cannot place it either, and says site by site why not.
                    admission.explained.append(by_id[JobId(demand.job_id)])
                continue
            self.pending_kinds.pop(demand.job_id, None)
            admission.admitted.append(by_id[JobId(demand.job_id)])
            if decision.pinned and not demand.model and demand.cards:
                admission.pins[demand.job_id] = decision.model
        return admission

    async def _reclaim(self, admission: _Admission, placed: set[JobId]) -> None:
        """Preempt borrowed jobs for tenants below their quota whose jobs still wait."""
        waiting = [d for d in admission.ordered if d.job_id not in placed]
        if waiting:
            placed_cards: dict[str, int] = {}
            for demand in admission.ordered:
                if demand.job_id in placed and demand.model:
                    placed_cards[demand.model] = placed_cards.get(demand.model, 0) + demand.cards
            free = FreeCapacity(
                {m: n - placed_cards.get(m, 0) for m, n in admission.free.free.items()},
                admission.free.draining,
            )
            running = self.usage.running(admission.holds, admission.table)
            await self._reclaimer.reclaim(waiting, running, admission.table, free)
        if self._reclaimer.busy:
            self._capacity_changed = True  # retry the whole queue while cards are reclaimed

    def tenants_table(self) -> TenantsTable:
        """The tenants table rounds admit by now (the config file's, as last read)."""
        return self._tenants()

    async def usage_now(self) -> UsageSnapshot:
        """Cards held per tenant and model now (from the ledger), with decayed card-hours."""
        holds = await self._capacity.holds()
        await self.usage.learn(holds)
        totals = model_totals(self._capacity.pool_totals())
        return self.usage.snapshot(holds, totals, self._tenants())

    async def queue_view(self) -> list[QueueEntry]:
        """Pending jobs in admission order, each with the reason it waits (the leader's view)."""
        usage = await self.usage_now()
        jobs = [j for j in self._pending.values() if j is not None]
        return queue_view(jobs, self._tenants(), usage, self.pending_reasons, self.pending_kinds)

    async def tenants_view(self) -> list[TenantRow]:
        """Each tenant's quota, borrowing limit, cards held and borrowed, and fair share."""
        usage = await self.usage_now()
        return tenant_rows(self._tenants(), usage)

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
                self.pending_kinds[job_id] = WaitReason.NO_CAPACITY
            self._fresh.clear()
            self._capacity_changed = True
            return 0
        candidates = await self._candidates()
        if not candidates:
            return 0
        started = time.perf_counter()
        queue = [j.spec for j in self._pending.values() if j is not None]
        # Holds before the snapshot: a preempted job's cards released in between then count
        # twice (free and still being reclaimed) for one round, never zero times, so the
        # same shortfall is never met by a second preemption.
        holds = await self._capacity.holds()
        snapshot = await self._capacity.snapshot(queue)
        admission = await self._admit(candidates, snapshot, holds)
        admitted, pins = [*admission.admitted, *admission.explained], admission.pins
        snapped = time.perf_counter()
        result = await asyncio.to_thread(
            place_batch,
            [(j.job_id, placement_spec(j, pins.get(j.job_id, ""))) for j in admitted],
            snapshot,
            self._policy,
            time_budget_s=self._timing.round_budget_s,
            pool_totals=self._capacity.pool_totals(),
        )
        solved = time.perf_counter()
        if self._on_decision is not None and admitted:
            self._on_decision(1000.0 * result.solve_s / len(admitted))
        now_ms = int(time.time() * 1000)
        explainer = _Explainer(snapshot, self._policy, solved + self._timing.explain_budget_s)
        pairs = []
        for job in admitted:
            site = result.assignment.get(job.job_id)
            if site is None:
                said = result.reasons.get(job.job_id, "")
                self.pending_reasons[job.job_id] = said or self.pending_reasons.get(job.job_id, "")
                self.pending_kinds.setdefault(job.job_id, WaitReason.NO_CAPACITY)
                continue
            self.pending_reasons.pop(job.job_id, None)
            self.pending_kinds.pop(job.job_id, None)
            spec = placement_spec(job, pins.get(job.job_id, ""))
            allocation = allocation_for(
                spec, SiteId(site), result.models.get(job.job_id, ""), now_ms
            )
            why = explainer.now_or_later(job, SiteId(site), allocation.pool, result.method)
            pairs.append((job, Placed(allocation, placement_json=why)))
            self.usage.placed(job, now_ms)
        explained_at = time.perf_counter()
        outcomes = await self._driver.feed_many(pairs)
        placed = sum(1 for o in outcomes if o.applied)
        placed_ids = {job.job_id for (job, _), o in zip(pairs, outcomes, strict=True) if o.applied}
        await self._reclaim(admission, placed_ids)
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
