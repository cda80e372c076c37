"""Carries out the lifecycle core's decisions: writes transitions, dispatches and stops.

Every shell that learns something about a job (placement, site reports, cancels, liveness,
rebalancing) hands it here as a stimulus; the core decides, this driver does. Writes of many
stimuli go to the store in one compare-and-set batch; the effects that follow a write run
only if that write held.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from broker.control import (
    Dispatch,
    Effect,
    JobMachine,
    PlaceAtTarget,
    Stimulus,
    Stop,
    Write,
)
from broker.sites.sessions import OutCancel, OutDispatch, SessionTable
from broker.store.protocol import Fence, FenceLostError
from broker.writer import StoreWriter
from computenet.types import Job, JobEvent, JobId

log = logging.getLogger(__name__)

PlaceAtTargetHook = Callable[[Job, PlaceAtTarget], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one stimulus did: its recorded event (None if it wrote nothing) and if it applied.

    `applied` is False when the core's write lost its compare-and-set (the job moved on).
    """

    applied: bool
    event: JobEvent | None = None


class JobDriver:
    """Feeds stimuli to the lifecycle core and carries out the effects it returns."""

    def __init__(
        self,
        writer: StoreWriter,
        sessions: SessionTable,
        machine: JobMachine | None = None,
        *,
        leader_fence: Fence | None = None,
    ) -> None:
        """With a `leader_fence`, every write is also fenced by the leader's epoch: a replica
        that lost its term writes nothing (FenceLostError), whatever it still believes."""
        self._writer = writer
        self._sessions = sessions
        self.machine = machine or JobMachine()
        self.leader_fence = leader_fence
        self.on_fence_lost: Callable[[FenceLostError], Awaitable[None]] | None = None
        """Called when a fenced write was refused (a newer leader exists)."""
        self.on_place_at_target: PlaceAtTargetHook | None = None
        """Called when a migrating job may be placed at its target (live rebalancing)."""

    async def job(self, job_id: JobId) -> Job | None:
        """The job as recorded now."""
        return await self._writer.read(lambda: self._writer.store.get_job(job_id))

    async def feed(self, job: Job, stimulus: Stimulus, *, fence: Fence | None = None) -> Outcome:
        """Decide and carry out one stimulus on `job` (as read by the caller)."""
        return (await self.feed_many([(job, stimulus)], fence=fence))[0]

    async def feed_many(
        self, pairs: Sequence[tuple[Job, Stimulus]], *, fence: Fence | None = None
    ) -> list[Outcome]:
        """Decide every stimulus, write all transitions in one batch, then act on those that held.

        With a `fence`, the writes happen only while its token holds the lease
        (FenceLostError otherwise, and nothing is written or sent).
        """
        decided = [(job, self.machine.handle(job, stimulus)) for job, stimulus in pairs]
        writes = [e.transition for _, effects in decided for e in effects if isinstance(e, Write)]
        fences = tuple(f for f in (self.leader_fence, fence) if f is not None)
        try:
            results = iter(await self._writer.apply(writes, fence=fences or None))
        except FenceLostError as exc:
            if self.on_fence_lost is not None and self.leader_fence is not None:
                await self.on_fence_lost(exc)
            raise
        outcomes: list[Outcome] = []
        for job, effects in decided:
            event: JobEvent | None = None
            applied = True
            for effect in effects:
                if isinstance(effect, Write):
                    event = next(results)
                    applied = event is not None
                    if not applied:
                        break
                else:
                    await self.carry_out(job, effect)
            outcomes.append(Outcome(applied, event))
        return outcomes

    async def carry_out(self, job: Job | None, effect: Effect) -> None:
        """Perform one effect that is not a write (`job` gives the spec to dispatch)."""
        if isinstance(effect, Dispatch):
            if job is None:
                return
            session = self._sessions.get(effect.site)
            if session is None:
                return  # delivered at the site's next hello
            session.send(
                OutDispatch(
                    session.next_id(),
                    effect.job_id,
                    effect.attempt,
                    effect.attempt,
                    job.spec,
                    job.tenant,
                    effect.pool,
                    restore_ref=effect.restore_ref,
                )
            )
        elif isinstance(effect, Stop):
            session = self._sessions.get(effect.site)
            if session is not None:
                session.send(
                    OutCancel(
                        session.next_id(),
                        effect.job_id,
                        effect.attempt,
                        effect.reason,
                        effect.checkpoint,
                    )
                )
        elif isinstance(effect, PlaceAtTarget):
            if job is not None and self.on_place_at_target is not None:
                await self.on_place_at_target(job, effect)
            else:
                log.warning("no mover for job_id=%s target=%s", effect.job_id, effect.target)
        else:
            raise TypeError(f"not an action effect: {effect!r}")

    async def carry_out_all(self, jobs: dict[JobId, Job], effects: Sequence[Effect]) -> None:
        """Perform action effects in order (no writes), e.g. what a reconnecting site is owed."""
        for effect in effects:
            job_id = getattr(effect, "job_id", None)
            await self.carry_out(jobs.get(job_id) if job_id else None, effect)
