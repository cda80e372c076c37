"""The broker side of a rebalancing run: read its input from the live broker, apply its steps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from broker.placement import FederationSnapshot, Policy, place
from broker.rebalance.apply import Action, Step
from broker.rebalance.model import ActiveJob, LastMove, PendingJob, RebalanceInput
from broker.scheduler import Scheduler, placement_to_json
from broker.store import Lease
from broker.store.protocol import Fence, FenceLostError, Hold, Transition
from broker.tracker import MIGRATING_TO, AttemptReport, JobTracker
from broker.writer import StoreWriter
from computenet.types import ACTIVE_STATES, Job, JobId, JobState, SiteId, SiteStatus

log = logging.getLogger(__name__)

T = TypeVar("T")
MOVABLE = frozenset({JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING})
STEP_TIMEOUT_S = 30.0
MS_PER_HOUR = 3_600_000


class MoveError(RuntimeError):
    """A step of a move could not be applied (the job changed, the lease went away)."""


class LiveRebalance:
    """Reads run inputs from the store and registry and applies steps through the dispatch path.

    `load_input` and `apply_step` are called from the runner's thread and hop onto the broker's
    event loop (`bind` it first); `migration_stopped` is the tracker's hook, on the loop.
    """

    def __init__(
        self,
        *,
        writer: StoreWriter,
        scheduler: Scheduler,
        tracker: JobTracker,
        policy: Policy,
        lease: Lease,
        demand: Callable[[], Mapping[str, Mapping[str, float]]] = dict,
    ) -> None:
        self._writer = writer
        self._scheduler = scheduler
        self._tracker = tracker
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
        snapshot = self._scheduler.snapshot(active)
        now_ms = int(snapshot.now_unix_s * 1000)
        return RebalanceInput(
            snapshot=snapshot,
            active=tuple(_active(j, now_ms) for j in active if j.state in MOVABLE and j.site),
            pending=tuple(PendingJob(j.job_id, j.spec) for j in pending),
            demand=self._demand(),
            history=history,
            policy=self._policy,
        )

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
        job = await self._writer.read(lambda: self._writer.store.get_job(JobId(step.job_id)))
        if job is None:
            raise MoveError("job not found")
        if step.action == Action.MARK_MIGRATING:
            await self._mark_migrating(job, step, fence)
        elif step.action in (Action.CHECKPOINT_AND_STOP, Action.STOP):
            if job.state != JobState.MIGRATING:
                raise MoveError(f"job is {job.state.value}, not migrating")
            checkpoint = step.action == Action.CHECKPOINT_AND_STOP
            self._tracker.cancel(job, job.reason, checkpoint=checkpoint)
        elif job.state == JobState.PENDING:
            await self._place(
                job, SiteId(step.site), cause="rebalance_placed", note=step.cause, fence=fence
            )
        elif job.state == JobState.MIGRATING and not self._source_alive(job):
            await self._place(
                job, SiteId(step.site), cause="evacuated", note=step.cause, fence=fence
            )
        elif job.state != JobState.MIGRATING:
            raise MoveError(f"job is {job.state.value}; cannot dispatch it to {step.site}")
        # A migrating job whose old site is alive moves on when that site confirms the stop.

    async def _mark_migrating(self, job: Job, step: Step, fence: Fence | None) -> None:
        if job.state not in MOVABLE or job.site != step.site:
            raise MoveError(f"job is {job.state.value} at {job.site}, not movable from {step.site}")
        event = (
            await self._writer.apply(
                [
                    Transition(
                        job_id=job.job_id,
                        new_state=JobState.MIGRATING,
                        cause="rebalance_migrating",
                        expect_states=MOVABLE,
                        expect_attempt=job.attempt,
                        reason=MIGRATING_TO + step.target,
                        message=step.cause,
                    )
                ],
                fence=fence,
            )
        )[0]
        if event is None:
            raise MoveError("job changed while the move began")

    def _source_alive(self, job: Job) -> bool:
        snapshot = self._scheduler.snapshot([])
        site = snapshot.sites.get(job.site or "")
        return site is not None and site.status not in (SiteStatus.LOST, SiteStatus.OFFLINE)

    async def migration_stopped(self, job: Job, report: AttemptReport) -> None:
        """The old attempt stopped: place the next attempt at the target, or back to pending."""
        target = SiteId(job.reason.removeprefix(MIGRATING_TO))
        note = f"stopped at {report.site_id}: {report.message}"
        if not await self._place(job, target, cause="migrated", note=note, strict=False):
            log.info("migration target full job_id=%s target=%s: requeued", job.job_id, target)
            requeue = self._tracker.requeue(job, cause="migration_target_unavailable", message=note)
            await self._writer.apply([requeue])

    async def _place(
        self,
        job: Job,
        target: SiteId,
        *,
        cause: str,
        note: str,
        strict: bool = True,
        fence: Fence | None = None,
    ) -> bool:
        """Place the job's next attempt at `target` if it fits there now; dispatch it."""
        store = self._writer.store
        active = await self._writer.read(lambda: store.jobs_in_states(ACTIVE_STATES))
        others = [j for j in active if j.job_id != job.job_id]
        snapshot = self._scheduler.snapshot(others)
        placement = place(job.spec, _only(snapshot, target), self._policy)
        if placement.chosen != target:
            if strict:
                raise MoveError(f"{target} cannot take the job now")
            return False
        attempt = job.attempt + 1
        resources = job.spec.resources
        transition = Transition(
            job_id=job.job_id,
            new_state=JobState.PLACED,
            cause=cause,
            expect_states=frozenset({job.state}),
            expect_attempt=job.attempt,
            site=target,
            attempt=attempt,
            reason="",
            message=f"placed on {target} ({note})",
            release_hold=True,
            hold=Hold(
                job.job_id,
                attempt,
                target,
                resources.accelerator,
                job.spec.accelerators_total,
                resources.cpu_cores,
                resources.memory_gb,
            ),
            placement_json=placement_to_json(placement),
        )
        if (await self._writer.apply([transition], fence=fence))[0] is None:
            if strict:
                raise MoveError("job changed before it could be placed")
            return True  # someone else moved it on (cancelled, finished, lost): nothing to do
        placed = await self._writer.read(lambda: store.get_job(job.job_id))
        if placed is not None and placed.state == JobState.PLACED:
            self._tracker.dispatch(placed)
        return True

    async def abandon_migrations(self) -> int:
        """At startup: migrations left by a stopped broker go back to running at their old site.

        If the old attempt did stop, its site's CANCELLED report (replayed on reconnect) then
        requeues the job as pending, so the job ends up running once or pending, never twice.
        """
        store = self._writer.store
        stuck = await self._writer.read(
            lambda: store.jobs_in_states(frozenset({JobState.MIGRATING}))
        )
        transitions = [
            Transition(
                job_id=j.job_id,
                new_state=JobState.RUNNING,
                cause="migration_abandoned",
                expect_states=frozenset({JobState.MIGRATING}),
                expect_attempt=j.attempt,
                reason="",
                message="the broker restarted during the move; the job stays where it was",
            )
            for j in stuck
        ]
        results = await self._writer.apply(transitions)
        count = sum(1 for r in results if r is not None)
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
        accelerator=job.spec.resources.accelerator,
    )


def _only(snapshot: FederationSnapshot, site: SiteId) -> FederationSnapshot:
    """The snapshot with every site but `site` removed, to ask whether the job fits there."""
    sites = {s: cap for s, cap in snapshot.sites.items() if s == site}
    return FederationSnapshot(snapshot.topology, sites, snapshot.now_unix_s)
