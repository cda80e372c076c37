"""The broker side of a rebalancing run: read its input from the live broker, apply its steps.

Steps become lifecycle stimuli (broker.control) fed through the job driver, so a move changes
job state only the way every other shell does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from broker.control import (
    MigrationAbandoned,
    MigrationBegun,
    MigrationSourceGone,
    MigrationStop,
    MigrationTargetUnavailable,
    PlaceAtTarget,
    Placed,
)
from broker.control.machine import MOVABLE
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.placement_loop import allocation_for, placement_to_json
from broker.placement import FederationSnapshot, Policy, place, place_batch
from broker.rebalance.apply import Action, Step
from broker.rebalance.model import ActiveJob, LastMove, PendingJob, RebalanceInput
from broker.rebalance.pricing import with_checkpoint
from broker.store import Lease
from broker.store.protocol import Fence, FenceLostError
from broker.writer import StoreWriter
from computenet.types import ACTIVE_STATES, Job, JobId, JobState, SiteId, SiteStatus

log = logging.getLogger(__name__)

T = TypeVar("T")
STEP_TIMEOUT_S = 30.0
MS_PER_HOUR = 3_600_000


class MoveError(RuntimeError):
    """A step of a move could not be applied (the job changed, the lease went away)."""


class LiveRebalance:
    """Reads run inputs from the ledger and registry and applies steps through the job driver.

    `load_input` and `apply_step` are called from the runner's thread and hop onto the broker's
    event loop (`bind` it first); `place_at_target` is the driver's hook, on the loop.
    """

    def __init__(
        self,
        *,
        writer: StoreWriter,
        capacity: CapacityView,
        driver: JobDriver,
        policy: Policy,
        lease: Lease,
        demand: Callable[[], Mapping[str, Mapping[str, float]]] = dict,
    ) -> None:
        self._writer = writer
        self._capacity = capacity
        self._driver = driver
        self._policy = policy
        self._lease = lease
        self._demand = demand
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the broker runs on."""
        self._loop = loop

    def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "LiveRebalance.bind() was not called"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(STEP_TIMEOUT_S)

    def load_input(self, history: Mapping[str, LastMove]) -> RebalanceInput:
        """The run's input: snapshot with site status, jobs holding capacity, pending jobs."""
        return self._on_loop(self.read_input(history))

    async def read_input(self, history: Mapping[str, LastMove]) -> RebalanceInput:
        """`load_input` on the event loop."""
        store = self._writer.store
        active = await self._writer.read(lambda: store.jobs_in_states(ACTIVE_STATES))
        pending = await self._writer.read(
            lambda: store.jobs_in_states(frozenset({JobState.PENDING}))
        )
        snapshot = await self._capacity.snapshot([j.spec for j in pending])
        now_ms = int(snapshot.now_unix_s * 1000)
        return RebalanceInput(
            snapshot=snapshot,
            active=tuple(_active(j, now_ms) for j in active if j.state in MOVABLE and j.site),
            pending=tuple(PendingJob(j.job_id, j.spec) for j in pending),
            demand=self._demand(),
            history=history,
            policy=self._policy,
            checkpoint_sites=self._checkpoint_sites(snapshot.sites),
        )

    def _checkpoint_sites(self, sites: Iterable[str]) -> frozenset[str]:
        """Those of `sites` whose agents said in their last hello that they move checkpoints."""
        entries = (self._capacity.site_entry(SiteId(s)) for s in sites)
        return frozenset(e.site_id for e in entries if e is not None and e.checkpoints)

    def apply_step(self, step: Step, token: int) -> None:
        """Perform one step if `token` still holds the lease; raises MoveError if it cannot."""
        if not self._lease.check(token):
            raise MoveError("lease lost before the step")
        try:
            self._on_loop(self.perform(step, Fence(self._lease.name, token)))
        except FenceLostError as exc:
            raise MoveError(f"lease lost during the step: {exc}") from None

    async def perform(self, step: Step, fence: Fence | None = None) -> None:
        """One step on the event loop; with `fence`, its writes happen only under that token."""
        job = await self._driver.job(JobId(step.job_id))
        if job is None:
            raise MoveError("job not found")
        if step.action == Action.MARK_MIGRATING:
            if job.state not in MOVABLE or job.site != step.site:
                raise MoveError(
                    f"job is {job.state.value} at {job.site}, not movable from {step.site}"
                )
            # carried out as priced: with a checkpoint only where the planner counted one
            now_ms = int(time.time() * 1000)
            carried = with_checkpoint(
                _active(job, now_ms), step.target, self._checkpoint_sites((step.site, step.target))
            )
            begun = MigrationBegun(
                SiteId(step.site), SiteId(step.target), step.cause, checkpoint=carried
            )
            if not (await self._driver.feed(job, begun, fence=fence)).applied:
                raise MoveError("job changed while the move began")
        elif step.action in (Action.CHECKPOINT_AND_STOP, Action.STOP):
            if job.state != JobState.MIGRATING:
                raise MoveError(f"job is {job.state.value}, not migrating")
            checkpoint = step.action == Action.CHECKPOINT_AND_STOP
            await self._driver.feed(job, MigrationStop(checkpoint), fence=fence)
        elif job.state == JobState.PENDING:
            await self._place(
                job, SiteId(step.site), cause="rebalance_placed", note=step.cause, fence=fence
            )
        elif job.state == JobState.MIGRATING and not self._source_alive(job):
            await self._driver.feed(job, MigrationSourceGone(step.cause), fence=fence)
        elif job.state != JobState.MIGRATING:
            raise MoveError(f"job is {job.state.value}; cannot dispatch it to {step.site}")
        # A migrating job whose old site is alive moves on when that site confirms the stop.

    def _source_alive(self, job: Job) -> bool:
        if job.site is None:
            return False
        entry = self._capacity.site_entry(job.site)
        return entry is not None and entry.status not in (SiteStatus.LOST, SiteStatus.OFFLINE)

    async def place_at_target(self, job: Job, effect: PlaceAtTarget) -> None:
        """The old attempt stopped (or its site is gone): place at the target (the old site on a
        fall-back), restoring the effect's checkpoint; if it cannot take the job, requeue."""
        placed = await self._place(
            job,
            effect.target,
            cause=effect.cause,
            note=effect.note,
            strict=False,
            replacing=effect.replacing,
            restore_ref=effect.restore_ref,
        )
        if not placed:
            log.info(
                "migration target full job_id=%s target=%s cause=%s: requeued",
                job.job_id,
                effect.target,
                effect.cause,
            )
            unavailable = MigrationTargetUnavailable(
                effect.note, replacing=effect.replacing, restore_ref=effect.restore_ref
            )
            await self._driver.feed(job, unavailable)

    async def _place(
        self,
        job: Job,
        target: SiteId,
        *,
        cause: str,
        note: str,
        strict: bool = True,
        fence: Fence | None = None,
        replacing: int | None = None,
        restore_ref: str | None = None,
    ) -> bool:
        """Place the job's next attempt at `target` if it fits there now; dispatch it."""
        snapshot = _only(await self._capacity.snapshot(without=job.job_id), target)
        result = place_batch([(job.job_id, job.spec)], snapshot, self._policy)
        if result.assignment.get(job.job_id) != target:
            if strict:
                raise MoveError(f"{target} cannot take the job now")
            return False
        why = place(job.spec, snapshot, self._policy)
        model = result.models.get(job.job_id, "")
        now_ms = int(time.time() * 1000)
        allocation = allocation_for(job.spec, target, model, now_ms, topology=snapshot.topology)
        stimulus = Placed(
            allocation,
            cause=cause,
            note=note,
            placement_json=placement_to_json(why),
            replacing=replacing,
            restore_ref=restore_ref,
        )
        if not (await self._driver.feed(job, stimulus, fence=fence)).applied and strict:
            raise MoveError("job changed before it could be placed")
        return True  # if someone else moved it on (cancelled, finished, lost), nothing to do

    async def abandon_migrations(self) -> int:
        """At startup: migrations left by a stopped broker go back to running at their old site.

        If the old attempt did stop, its site's CANCELLED report (replayed on reconnect) then
        requeues the job as pending, so the job ends up running once or pending, never twice.
        """
        store = self._writer.store
        stuck = await self._writer.read(
            lambda: store.jobs_in_states(frozenset({JobState.MIGRATING}))
        )
        note = "the broker restarted during the move; the job stays where it was"
        outcomes = await self._driver.feed_many([(j, MigrationAbandoned(note)) for j in stuck])
        count = sum(1 for o in outcomes if o.event is not None)
        if count:
            log.warning("abandoned unfinished migrations count=%d", count)
        return count


def _active(job: Job, now_ms: int) -> ActiveJob:
    running_ms = now_ms - job.updated_unix_ms if job.state == JobState.RUNNING else 0
    return ActiveJob(
        job_id=job.job_id,
        spec=job.spec,
        site=job.site or "",
        elapsed_h=max(0.0, running_ms / MS_PER_HOUR),
        accelerator=job.pool or job.spec.resources.accelerator,
    )


def _only(snapshot: FederationSnapshot, site: SiteId) -> FederationSnapshot:
    """The snapshot with every site but `site` removed, to ask whether the job fits there."""
    sites = {s: cap for s, cap in snapshot.sites.items() if s == site}
    return FederationSnapshot(snapshot.topology, sites, snapshot.now_unix_s)
