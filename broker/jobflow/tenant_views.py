"""Conversions between the placement loop's world and the tenancy core's: jobs to demands,
snapshots to idle cards, and the queue view over the pending jobs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from broker.placement import FederationSnapshot
from broker.tenancy import (
    FreeCapacity,
    JobDemand,
    QueueEntry,
    TenantRow,
    TenantsTable,
    UsageSnapshot,
    WaitReason,
    pending_order,
    queue_entries,
)
from computenet.types import Job, SiteStatus

NOT_YET_TRIED = "waiting for the next placement round"


def demand_of(job: Job, table: TenantsTable) -> JobDemand:
    """A pending job as admission sees it."""
    spec = job.spec
    return JobDemand(
        job_id=job.job_id,
        tenant=job.tenant,
        model=spec.resources.accelerator,
        cards=spec.accelerators_total,
        priority=table.priority(job.tenant, spec.priority),
        created_unix_ms=job.created_unix_ms,
    )


def free_capacity(snapshot: FederationSnapshot) -> FreeCapacity:
    """Idle cards per model at sites that take new work, and those at draining sites."""
    free: dict[str, int] = {}
    draining: dict[str, int] = {}
    for site in snapshot.sites.values():
        if site.status == SiteStatus.ACTIVE and not site.capacity_stale:
            into = free
        elif site.status == SiteStatus.DRAINING:
            into = draining
        else:
            continue
        for model, cards in site.free.items():
            if cards > 0:
                into[model] = into.get(model, 0) + cards
    return FreeCapacity(free, draining)


def model_totals(pool_totals: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The federation's cards per model, from the cards per site and model."""
    out: dict[str, int] = {}
    for pools in pool_totals.values():
        for model, cards in pools.items():
            out[model] = out.get(model, 0) + cards
    return out


def queue_view(
    pending: Iterable[Job],
    table: TenantsTable,
    usage: UsageSnapshot,
    reasons: Mapping[str, str],
    kinds: Mapping[str, WaitReason],
) -> list[QueueEntry]:
    """Pending jobs in admission order, each with the reason it waits (never empty)."""
    order = pending_order([demand_of(j, table) for j in pending], table, usage)
    said = {d.job_id: (kinds.get(d.job_id), reasons.get(d.job_id) or NOT_YET_TRIED) for d in order}
    return queue_entries(order, said)


class _Views(Protocol):
    async def queue_view(self) -> list[QueueEntry]: ...

    async def tenants_view(self) -> list[TenantRow]: ...


class LoopTenancyView:
    """The placement loop's own queue and tenants views, under the names the RPC layer reads
    (`queue()`, `tenants()`): the order and reasons of the rounds that admit and place."""

    def __init__(self, loop: _Views) -> None:
        self._loop = loop

    async def queue(self) -> list[QueueEntry]:
        """Pending jobs in admission order, each with why it waits."""
        return await self._loop.queue_view()

    async def tenants(self) -> list[TenantRow]:
        """Every configured tenant and every tenant holding or having used cards."""
        return await self._loop.tenants_view()
