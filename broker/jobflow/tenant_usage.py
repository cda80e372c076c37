"""What each tenant holds and has used, read from the capacity ledger for the tenancy core.

Holds name jobs, not tenants: the tenant, priority, age and checkpointing of each job holding
cards are kept here (learned from the pending queue when a job is placed, read from the store
for a hold of a job never seen). Decayed card-hours accrue from the holds at every round, in
memory, since this leader's term began.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from broker.store.protocol import Hold
from broker.tenancy import RunningJob, TenantsTable, UsageSnapshot
from broker.tenancy.usage import DecayedUsage, held_by_tenant
from broker.writer import StoreWriter
from computenet.types import Job, JobId

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the tenancy core needs of a job holding cards."""

    tenant: str
    priority: int
    started_unix_ms: int
    checkpointable: bool


def facts_of(job: Job, started_unix_ms: int) -> JobFacts:
    """The facts of `job`, whose current attempt began at `started_unix_ms`."""
    return JobFacts(
        tenant=job.tenant,
        priority=job.spec.priority,
        started_unix_ms=started_unix_ms,
        checkpointable=job.spec.checkpoint is not None,
    )


class TenantUsageTracker:
    """Cards held per tenant and model now, decayed card-hours, and the running jobs."""

    def __init__(self, writer: StoreWriter, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._writer = writer
        self._clock = clock
        self._facts: dict[str, JobFacts] = {}
        self._usage = DecayedUsage()
        self.last: UsageSnapshot = UsageSnapshot()
        """The snapshot of the last round (what the tenants view shows between rounds)."""

    def placed(self, job: Job, now_unix_ms: int) -> None:
        """A pending job was just placed: remember whose it is."""
        self._facts[job.job_id] = facts_of(job, now_unix_ms)

    async def learn(self, holds: Iterable[Hold]) -> None:
        """Read the facts of jobs holding cards that this tracker has not seen."""
        ids = {h.job_id for h in holds}
        missing = [JobId(i) for i in ids if i not in self._facts]
        if missing:
            store = self._writer.store
            for job in await self._writer.read(functools.partial(store.get_jobs, missing)):
                self._facts[job.job_id] = facts_of(job, job.updated_unix_ms)
        if len(self._facts) > 2 * len(ids) + 1000:
            self._facts = {i: f for i, f in self._facts.items() if i in ids}

    def tenant_of(self, job_id: str) -> str | None:
        """The tenant of a job holding cards (None if unknown)."""
        facts = self._facts.get(job_id)
        return facts.tenant if facts is not None else None

    def snapshot(
        self, holds: Sequence[Hold], capacity: Mapping[str, int], table: TenantsTable
    ) -> UsageSnapshot:
        """Usage now: cards held by tenant from `holds`, card-hours accrued up to now."""
        held = held_by_tenant(
            (f.tenant, h.pool, h.count)
            for h in holds
            if (f := self._facts.get(h.job_id)) is not None
        )
        now_h = self._clock() / SECONDS_PER_HOUR
        self.last = self._usage.snapshot(held, capacity, now_h, table.fair_share.half_life_h)
        return self.last

    def running(self, holds: Sequence[Hold], table: TenantsTable) -> list[RunningJob]:
        """Every job holding cards, as the preemption choice takes them (one per job and
        model)."""
        cards: dict[tuple[str, str], int] = {}
        for hold in holds:
            if hold.pool and hold.count > 0 and hold.job_id in self._facts:
                key = (hold.job_id, hold.pool)
                cards[key] = cards.get(key, 0) + hold.count
        out = []
        for (job_id, model), count in cards.items():
            facts = self._facts[job_id]
            out.append(
                RunningJob(
                    job_id=job_id,
                    tenant=facts.tenant,
                    model=model,
                    cards=count,
                    priority=table.priority(facts.tenant, facts.priority),
                    started_unix_ms=facts.started_unix_ms,
                    checkpointable=facts.checkpointable,
                )
            )
        return out
