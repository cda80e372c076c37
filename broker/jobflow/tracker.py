"""Follows placed jobs through their sites: turns what sites say into lifecycle stimuli."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from broker.control import (
    SUPERSEDED,
    AttemptReported,
    DispatchAcknowledged,
    SiteLost,
    Stop,
)
from broker.jobflow.driver import JobDriver
from broker.sites.sessions import AgentSession, OutDispatch
from broker.writer import StoreWriter
from computenet.site_messages import AttemptStatus
from computenet.types import ACTIVE_STATES, Job, JobId, JobState, SiteId

log = logging.getLogger(__name__)

_ACTIVE = frozenset(ACTIVE_STATES)


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """A job attempt's state change as reported by its site."""

    site_id: SiteId
    job_id: JobId
    attempt: int
    state: JobState
    exit_code: int | None
    message: str
    launch_failed: bool = False
    """A FAILED attempt that never started (the site could not launch it)."""
    checkpoint_ref: str = ""
    """A stopped attempt's exported checkpoint ("" if none)."""
    checkpoint_bytes: int = 0
    """Size of that checkpoint."""


class JobTracker:
    """Feeds site reports, acknowledgements, reconnects and losses to the lifecycle core."""

    def __init__(self, writer: StoreWriter, driver: JobDriver) -> None:
        self._writer = writer
        self._driver = driver

    async def _active_at(self, site_id: SiteId) -> list[Job]:
        store = self._writer.store
        active = await self._writer.read(lambda: store.jobs_in_states(_ACTIVE))
        return [j for j in active if j.site == site_id]

    async def resume_site(self, session: AgentSession, listed: Sequence[AttemptStatus]) -> None:
        """After a hello: reconcile the attempts the site lists with what the broker believes.

        Its current attempts it no longer knows are lost (requeued or failed by policy), placed
        ones are delivered again, pending stops repeated, and attempts moved away are stopped.
        """
        site_id = session.site_id
        jobs = await self._active_at(site_id)
        # Jobs the hello names that are no longer active here: moved, finished or cancelled.
        named = sorted({s.job_id for s in listed} - {j.job_id for j in jobs})
        if named:
            store = self._writer.store
            jobs += await self._writer.read(lambda: store.get_jobs(named))
        resumption = self._driver.machine.resume(site_id, jobs, listed, _now_ms())
        outcomes = await self._driver.feed_many(resumption.stimuli)
        for stop in resumption.stops:
            await self._driver.carry_out(None, stop)
        for event in (o.event for o in outcomes if o.event is not None):
            log.info(
                "reconciled site=%s job_id=%s cause=%s state=%s",
                site_id,
                event.job_id,
                event.cause,
                event.state.value,
            )
        log.info(
            "site resumed site=%s listed=%d jobs=%d unknown_jobs_stopped=%d",
            site_id,
            len(listed),
            len(resumption.stimuli),
            len(resumption.stops),
        )

    async def dispatch_acknowledged(self, site_id: SiteId, delivery: OutDispatch) -> None:
        """The agent holds the attempt durably: placed -> dispatched."""
        job = await self._driver.job(delivery.job_id)
        if job is not None:
            await self._driver.feed(job, DispatchAcknowledged(site_id, delivery.attempt))

    async def report(self, report: AttemptReport) -> None:
        """Apply an attempt report; stale or repeated reports change nothing."""
        stimulus = AttemptReported(
            report.site_id,
            report.attempt,
            report.state,
            report.exit_code,
            report.message,
            launch_failed=report.launch_failed and report.state == JobState.FAILED,
            now_unix_ms=_now_ms(),
            checkpoint_ref=report.checkpoint_ref if report.state == JobState.CANCELLED else "",
            checkpoint_bytes=report.checkpoint_bytes if report.state == JobState.CANCELLED else 0,
        )
        if stimulus.checkpoint_ref:
            log.info(
                "checkpoint exported job_id=%s attempt=%d site=%s bytes=%d ref=%s",
                report.job_id,
                report.attempt,
                report.site_id,
                stimulus.checkpoint_bytes,
                stimulus.checkpoint_ref,
            )
        job = await self._driver.job(report.job_id)
        if job is None:
            if report.state == JobState.RUNNING:  # a job this broker never had
                stop = Stop(report.site_id, report.job_id, report.attempt, SUPERSEDED)
                await self._driver.carry_out(None, stop)
            return
        await self._driver.feed(job, stimulus)

    async def site_lost(self, site_id: SiteId) -> int:
        """Requeue (or fail) every job at a lost site; returns how many moved."""
        jobs = await self._active_at(site_id)
        lost = SiteLost(site_id, now_unix_ms=_now_ms())
        outcomes = await self._driver.feed_many([(j, lost) for j in jobs])
        moved = sum(1 for o in outcomes if o.event is not None)
        log.warning("site lost site=%s jobs_moved=%d", site_id, moved)
        return moved


def _now_ms() -> int:
    return int(time.time() * 1000)
