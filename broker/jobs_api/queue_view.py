"""The pending queue and the tenants as the tenancy core sees them, read from the broker's state.

`TenancyView` is the seam the queue and tenants views read through. `LedgerTenancyView`
builds both from what the store and the leader hold now: pending jobs as `JobDemand`s, the
ledger's holds by tenant, the idle cards of the leader's capacity view and recorded usage as
card-hours (decayed by the fair-share half-life). It runs the pure core
(`pending_order`, `admit_round`) and, for a job admission lets through that still waits,
gives the placement loop's own reason. When the placement loop keeps its admission round,
it can answer `TenancyView` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from broker.accounting.pricing import MS_PER_HOUR, cst_day_start_ms
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.placement_loop import RETRY_WAIT
from broker.tenancy import (
    FreeCapacity,
    JobDemand,
    QueueEntry,
    TenantRow,
    TenantsTable,
    TenantUsage,
    UsageSnapshot,
    Waiting,
    WaitReason,
    admit_round,
    pending_order,
    queue_entries,
    tenant_rows,
)
from broker.writer import StoreWriter
from computenet.types import ACTIVE_STATES, Job, JobState, SiteStatus
from computenet.usage import UsageRecord

_PENDING = frozenset({JobState.PENDING})
_ACTIVE = frozenset(ACTIVE_STATES)
NEXT_ROUND = "waiting for the next placement round"


class TenancyView(Protocol):
    """What the queue and tenants views show."""

    async def queue(self) -> list[QueueEntry]:
        """Pending jobs in admission order, each with why it waits."""
        ...

    async def tenants(self) -> list[TenantRow]:
        """Every configured tenant and every tenant holding or having used cards."""
        ...


def demand_of(job: Job, table: TenantsTable) -> JobDemand:
    """A pending job as admission sees it."""
    resources = job.spec.resources
    return JobDemand(
        job_id=job.job_id,
        tenant=job.tenant,
        model=resources.accelerator,
        cards=resources.count,
        priority=table.priority(job.tenant, job.spec.priority),
        created_unix_ms=job.created_unix_ms,
    )


def decayed_card_hours(
    records: Sequence[UsageRecord], now_unix_ms: int, half_life_h: float
) -> dict[str, dict[str, float]]:
    """Recorded card-hours per tenant and model, each day's weighted by 0.5 ** (age / half
    life), its age taken at the middle of the day (CST)."""
    out: dict[str, dict[str, float]] = {}
    for record in records:
        middle = cst_day_start_ms(record.day) + 12 * MS_PER_HOUR
        age_h = max(0.0, (now_unix_ms - middle) / MS_PER_HOUR)
        weight = 0.5 ** (age_h / half_life_h) if half_life_h > 0 else 1.0
        by_model = out.setdefault(record.tenant, {})
        by_model[record.model] = by_model.get(record.model, 0.0) + record.totals.card_hours * weight
    return out


def usage_snapshot(
    active: Sequence[Job],
    holds: Sequence[tuple[str, str, int]],
    card_hours: Mapping[str, Mapping[str, float]],
    capacity: Mapping[str, int],
) -> UsageSnapshot:
    """Every tenant's held cards (from (job id, model, cards) hold lines) and card-hours."""
    tenant_of: dict[str, str] = {job.job_id: job.tenant for job in active}
    held: dict[str, dict[str, int]] = {}
    for job_id, model, cards in holds:
        tenant = tenant_of.get(job_id)
        if tenant is not None and model and cards > 0:
            by_model = held.setdefault(tenant, {})
            by_model[model] = by_model.get(model, 0) + cards
    tenants = {
        t: TenantUsage(held=held.get(t, {}), card_hours=dict(card_hours.get(t, {})))
        for t in held.keys() | card_hours.keys()
    }
    return UsageSnapshot(tenants=tenants, capacity=dict(capacity))


class LedgerTenancyView:
    """The queue and tenants computed on demand from the store and the leader's capacity."""

    def __init__(
        self,
        *,
        writer: StoreWriter,
        tenants: Callable[[], TenantsTable],
        capacity: Callable[[], CapacityView],
        pending_reasons: Callable[[], Mapping[str, str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`capacity` is the leader's capacity view (it raises NotLeaderError on a follower);
        `pending_reasons` the placement loop's latest reason per pending job."""
        self._writer = writer
        self._tenants = tenants
        self._capacity = capacity
        self._pending_reasons = pending_reasons
        self._clock = clock

    async def _state(self) -> tuple[list[Job], UsageSnapshot, FreeCapacity, TenantsTable]:
        table = self._tenants()
        view = self._capacity()
        store = self._writer.store
        pending = await self._writer.read(lambda: store.jobs_in_states(_PENDING))
        active = await self._writer.read(lambda: store.jobs_in_states(_ACTIVE))
        holds = [(h.job_id, h.pool, h.count) for h in await self._writer.read(store.holds)]
        now_ms = int(self._clock() * 1000)
        since = time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000 - 30 * 86400))
        records = await self._writer.read(lambda: store.usage_records(since_day=since))
        snapshot = await view.snapshot()
        free: dict[str, int] = {}
        draining: dict[str, int] = {}
        total: dict[str, int] = {}
        for site in snapshot.sites.values():
            into = draining if site.status == SiteStatus.DRAINING else free
            accepting = site.status in (SiteStatus.ACTIVE, SiteStatus.DRAINING)
            for model, cards in site.free.items():
                if accepting and not site.capacity_stale:
                    into[model] = into.get(model, 0) + cards
        for record in snapshot.topology.sites:
            for pool in record.pools:
                total[pool.model] = total.get(pool.model, 0) + pool.count
        hours = decayed_card_hours(records, now_ms, table.fair_share.half_life_h)
        usage = usage_snapshot(active, holds, hours, total)
        return pending, usage, FreeCapacity(free, draining), table

    async def queue(self) -> list[QueueEntry]:
        """See TenancyView.queue."""
        pending, usage, free, table = await self._state()
        ordered = pending_order([demand_of(j, table) for j in pending], table, usage)
        placer = self._pending_reasons()
        reasons: dict[str, tuple[WaitReason | None, str]] = {}
        for job, decision in admit_round(ordered, table, usage, free):
            if isinstance(decision, Waiting):
                reasons[job.job_id] = (decision.reason, decision.text)
            else:  # admission lets it through: the placer says why it is still pending
                text = placer.get(job.job_id, "")
                if not text or text.startswith(RETRY_WAIT):
                    reasons[job.job_id] = (None, text or NEXT_ROUND)
                else:
                    reasons[job.job_id] = (WaitReason.NO_CAPACITY, text)
        return queue_entries(ordered, reasons)

    async def tenants(self) -> list[TenantRow]:
        """See TenancyView.tenants."""
        _, usage, _, table = await self._state()
        return tenant_rows(table, usage)
