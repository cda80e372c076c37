"""The queue and tenants views as data: pending jobs in admission order with the reason each
waits, and each tenant's quota, borrowed and used cards and fair share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from broker.tenancy.admission import JobDemand, WaitReason
from broker.tenancy.order import dominant_share
from broker.tenancy.policy import TenantsTable
from broker.tenancy.usage import UsageSnapshot


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One pending job at its place in the admission order."""

    position: int
    """1 for the job admitted first."""
    job_id: str
    tenant: str
    model: str
    cards: int
    priority: int
    created_unix_ms: int
    reason: WaitReason | None
    """Why it waits, by kind (None: it was admitted or is waiting on something else, such as a
    retry backoff; `text` then says what)."""
    text: str


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One tenant's entitlement and what it holds and used, by accelerator model."""

    tenant: str
    weight: float
    configured: bool
    """Named in the tenants table (False: an unlisted tenant with the default policy)."""
    quota: Mapping[str, int] = field(default_factory=dict)
    borrowing_limit: Mapping[str, int | None] = field(default_factory=dict)
    """None: borrows idle cards of that model without limit."""
    held: Mapping[str, int] = field(default_factory=dict)
    borrowed: Mapping[str, int] = field(default_factory=dict)
    """Cards held beyond the nominal quota."""
    card_hours: Mapping[str, float] = field(default_factory=dict)
    """Decayed card-hours (broker.tenancy.usage)."""
    fair_share: float = 0.0
    """Weighted dominant share (broker.tenancy.order); the lowest goes first."""


def queue_entries(
    order: Sequence[JobDemand], reasons: Mapping[str, tuple[WaitReason | None, str]]
) -> list[QueueEntry]:
    """The pending jobs of `order`, numbered, each with its reason from `reasons` by job id."""
    out = []
    for i, job in enumerate(order, start=1):
        reason, text = reasons.get(job.job_id, (None, ""))
        out.append(
            QueueEntry(
                position=i,
                job_id=job.job_id,
                tenant=job.tenant,
                model=job.model,
                cards=job.cards,
                priority=job.priority,
                created_unix_ms=job.created_unix_ms,
                reason=reason,
                text=text,
            )
        )
    return out


def tenant_rows(table: TenantsTable, usage: UsageSnapshot) -> list[TenantRow]:
    """Every configured tenant and every other tenant with usage, by name."""
    rows = []
    for tenant in sorted(table.tenants.keys() | usage.tenants.keys()):
        policy = table.policy(tenant)
        mine = usage.of(tenant)
        models = sorted(policy.quota.keys() | policy.borrowing_limit.keys() | mine.held.keys())
        rows.append(
            TenantRow(
                tenant=tenant,
                weight=policy.weight,
                configured=tenant in table.tenants,
                quota={m: policy.nominal(m) for m in models},
                borrowing_limit={m: policy.borrowing_limit.get(m) for m in models},
                held={m: mine.held_cards(m) for m in models},
                borrowed={m: max(0, mine.held_cards(m) - policy.nominal(m)) for m in models},
                card_hours=dict(mine.card_hours),
                fair_share=dominant_share(tenant, table, usage),
            )
        )
    return rows
