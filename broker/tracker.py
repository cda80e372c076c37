"""Follows placed jobs through their sites: dispatch delivery, agent reports, cancels, site loss."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from broker.sessions import AgentSession, OutCancel, OutDispatch, SessionTable
from broker.store.protocol import Transition
from broker.writer import StoreWriter
from computenet.types import ACTIVE_STATES, Job, JobId, JobState, SiteId

log = logging.getLogger(__name__)

CANCEL_REQUESTED = "cancel requested"
SUPERSEDED = "superseded: the job runs elsewhere now"
MIGRATING_TO = "migrating to "
"""Reason prefix of a job whose attempt is stopping so that it can move; the target follows."""


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """A job attempt's state change as reported by its site."""

    site_id: SiteId
    job_id: JobId
    attempt: int
    state: JobState
    exit_code: int | None
    message: str


class JobTracker:
    """Turns what sites say into job transitions, and tells sites what to run or stop."""

    def __init__(self, writer: StoreWriter, sessions: SessionTable) -> None:
        self._writer = writer
        self._sessions = sessions
        self.on_migration_stopped: Callable[[Job, AttemptReport], Awaitable[None]] | None = None
        """Takes over when a migrating job's old attempt confirms it stopped (rebalancing)."""

    async def _job(self, job_id: JobId) -> Job | None:
        return await self._writer.read(lambda: self._writer.store.get_job(job_id))

    def dispatch(self, job: Job, session: AgentSession | None = None) -> None:
        """Send a placed job's attempt to its site, if the site is connected."""
        assert job.site is not None
        session = session or self._sessions.get(job.site)
        if session is None:
            return
        session.send(
            OutDispatch(
                session.next_id(), job.job_id, job.attempt, job.attempt, job.spec, job.tenant
            )
        )

    def cancel(
        self,
        job: Job,
        reason: str,
        session: AgentSession | None = None,
        *,
        checkpoint: bool = False,
    ) -> None:
        """Ask a job's site to stop its current attempt (checkpointing first if asked)."""
        if job.site is None:
            return
        session = session or self._sessions.get(job.site)
        if session is not None:
            session.send(OutCancel(session.next_id(), job.job_id, job.attempt, reason, checkpoint))

    async def resume_site(self, session: AgentSession, held: list[tuple[JobId, int]]) -> None:
        """After a hello: re-deliver what the site owes, and stop attempts that moved away."""
        site_id = session.site_id
        active = await self._writer.read(
            lambda: self._writer.store.jobs_in_states(frozenset(ACTIVE_STATES))
        )
        mine = {j.job_id: j for j in active if j.site == site_id}
        for job in mine.values():
            if job.reason == CANCEL_REQUESTED:
                self.cancel(job, CANCEL_REQUESTED, session)
            elif job.state == JobState.MIGRATING:
                self.cancel(job, job.reason, session, checkpoint=True)
            elif job.state == JobState.PLACED:
                self.dispatch(job, session)
        for job_id, attempt in held:
            current = mine.get(job_id)
            if current is None or current.attempt != attempt:
                session.send(OutCancel(session.next_id(), job_id, attempt, SUPERSEDED))

    async def dispatch_acknowledged(self, site_id: SiteId, delivery: OutDispatch) -> None:
        """The agent holds the attempt durably: placed -> dispatched."""
        await self._writer.apply(
            [
                Transition(
                    job_id=delivery.job_id,
                    new_state=JobState.DISPATCHED,
                    cause="dispatch_acknowledged",
                    expect_states=frozenset({JobState.PLACED}),
                    expect_attempt=delivery.attempt,
                    message=f"accepted by {site_id}",
                )
            ]
        )

    async def report(self, report: AttemptReport) -> None:
        """Apply an attempt report; stale or repeated reports change nothing."""
        job = await self._job(report.job_id)
        if job is None or job.site != report.site_id or job.attempt != report.attempt:
            if report.state == JobState.RUNNING:
                session = self._sessions.get(report.site_id)
                if session is not None:
                    session.send(
                        OutCancel(session.next_id(), report.job_id, report.attempt, SUPERSEDED)
                    )
            return
        if (
            report.state == JobState.CANCELLED
            and job.state == JobState.MIGRATING
            and job.reason.startswith(MIGRATING_TO)
            and self.on_migration_stopped is not None
        ):
            await self.on_migration_stopped(job, report)
            return
        transition = self._transition_for(job, report)
        if transition is not None:
            await self._writer.apply([transition])

    def _transition_for(self, job: Job, report: AttemptReport) -> Transition | None:
        from_site = Transition(
            job_id=job.job_id,
            new_state=report.state,
            cause="site_reported",
            expect_states=frozenset(ACTIVE_STATES),
            expect_attempt=report.attempt,
            message=report.message,
            release_hold=True,
        )
        if report.state == JobState.RUNNING:
            return replace(
                from_site, expect_states=frozenset({JobState.PLACED, JobState.DISPATCHED})
            )
        if report.state in (JobState.SUCCEEDED, JobState.FAILED):
            return replace(from_site, exit_code=report.exit_code, reason="")
        if report.state == JobState.CANCELLED:
            if job.reason == CANCEL_REQUESTED:
                return replace(from_site, cause="site_confirmed_cancel")
            return self.requeue(job, cause="stopped_at_site", message=report.message)
        return None

    @staticmethod
    def requeue(job: Job, *, cause: str, message: str = "") -> Transition:
        """Back to pending (or failed/cancelled as the job's policy and history say)."""
        back = Transition(
            job_id=job.job_id,
            new_state=JobState.PENDING,
            cause=cause,
            expect_states=frozenset(ACTIVE_STATES),
            expect_attempt=job.attempt,
            site="",
            reason=cause,
            message=message,
            release_hold=True,
        )
        if job.reason == CANCEL_REQUESTED:
            return replace(back, new_state=JobState.CANCELLED, site=None, reason=None)
        if job.spec.on_site_loss == "fail":
            return replace(back, new_state=JobState.FAILED, site=None)
        return back

    async def site_lost(self, site_id: SiteId) -> int:
        """Requeue (or fail) every job at a lost site; returns how many moved."""
        active = await self._writer.read(
            lambda: self._writer.store.jobs_in_states(frozenset(ACTIVE_STATES))
        )
        moves = [self.requeue(j, cause="site_lost") for j in active if j.site == site_id]
        results = await self._writer.apply(moves)
        moved = sum(1 for r in results if r is not None)
        log.warning("site lost site=%s jobs_moved=%d", site_id, moved)
        return moved
