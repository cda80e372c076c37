"""Preemption to reclaim: feeds `Preempt` for the borrowed jobs the tenancy core chooses.

A preempted job stops with a checkpoint at its site and requeues when the site confirms
(broker.control.machine). Until its cards are released, or for the grace after the
preemption if the site is slow, its cards count as being reclaimed, so the same shortfall is
not met twice by preempting more jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from broker.control import Preempt
from broker.jobflow.driver import JobDriver
from broker.tenancy import FreeCapacity, JobDemand, RunningJob, TenantsTable, choose_preemptions
from computenet.types import Job, JobId

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _InFlight:
    model: str
    cards: int
    until_s: float


class Reclaimer:
    """Chooses and carries out preemptions, remembering those whose cards are not yet free."""

    def __init__(
        self,
        driver: JobDriver,
        *,
        on_preempted: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._driver = driver
        self._on_preempted = on_preempted
        self._clock = clock
        self._inflight: dict[str, _InFlight] = {}

    @property
    def busy(self) -> bool:
        """Preempted jobs whose cards are not free yet (the waiting jobs should be retried)."""
        return bool(self._inflight)

    def reclaiming(self, holding: Collection[str]) -> dict[str, int]:
        """Cards per model still being freed: preempted jobs that hold cards, within grace."""
        now = self._clock()
        self._inflight = {
            i: f for i, f in self._inflight.items() if i in holding and f.until_s > now
        }
        out: dict[str, int] = {}
        for flight in self._inflight.values():
            out[flight.model] = out.get(flight.model, 0) + flight.cards
        return out

    async def reclaim(
        self,
        waiting: Sequence[JobDemand],
        running: Sequence[RunningJob],
        table: TenantsTable,
        free: FreeCapacity,
    ) -> int:
        """Preempt what the core chooses for `waiting` among `running`; returns how many."""
        if not table.preemption.enabled or not waiting:
            return 0
        reclaiming = self.reclaiming({r.job_id for r in running})
        victims = choose_preemptions(
            waiting, running, table, free, reclaiming=reclaiming, stopping=self._inflight.keys()
        )
        if not victims:
            return 0
        pairs: list[tuple[Job, Preempt]] = []
        for victim in victims:
            job = await self._driver.job(JobId(victim.job_id))
            if job is not None:
                pairs.append((job, Preempt(victim.reason)))
        outcomes = await self._driver.feed_many(pairs)
        until_s = self._clock() + table.preemption.grace_s
        done = 0
        by_id = {v.job_id: v for v in victims}
        for (job, stimulus), outcome in zip(pairs, outcomes, strict=True):
            if not outcome.applied or outcome.event is None:
                continue
            victim = by_id[job.job_id]
            self._inflight[job.job_id] = _InFlight(victim.model, victim.cards, until_s)
            done += 1
            if self._on_preempted is not None:
                self._on_preempted(victim.tenant)
            log.info(
                "preempted job_id=%s tenant=%s cards=%d model=%s reason=%r",
                job.job_id,
                victim.tenant,
                victim.cards,
                victim.model,
                stimulus.reason,
            )
        return done
