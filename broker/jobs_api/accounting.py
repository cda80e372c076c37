"""Usage reports, the pending queue and the tenants in domain terms, scoped to the caller.

A user sees its own tenant: asking for another one is refused (PermissionDeniedError), not
answered empty, so a typo is not mistaken for "no usage". An operator sees every tenant and
may name one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from broker.jobs_api.queue_view import TenancyView
from broker.tenancy import QueueEntry, TenantRow
from broker.writer import StoreWriter
from computenet.errors import FieldViolation, InvalidArgumentError, PermissionDeniedError
from computenet.types import TenantId
from computenet.usage import (
    QueuedJob,
    TenantModelStatus,
    TenantStatus,
    UsageGrouping,
    UsageReport,
    WaitReason,
    group_usage,
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: their tenant and whether they are an operator."""

    tenant: str
    operator: bool


def scoped_tenant(caller: Caller, asked: str) -> TenantId | None:
    """The tenant a call covers (None: every tenant); PermissionDeniedError for a user asking
    about another tenant."""
    if caller.operator:
        return TenantId(asked) if asked else None
    if asked and asked != caller.tenant:
        raise PermissionDeniedError(
            f"tenant {caller.tenant!r} may not see tenant {asked!r}: users see their own "
            "tenant only (an operator token sees all)"
        )
    return TenantId(caller.tenant)


def _checked_day(field: str, value: str, violations: list[FieldViolation]) -> str:
    if not value:
        return ""
    try:
        return datetime.strptime(value, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        violations.append(FieldViolation(field, f"must be a date YYYY-MM-DD (got {value!r})"))
        return ""


def checked_days(since_day: str, until_day: str) -> tuple[str, str]:
    """The day range normalised; InvalidArgumentError with field violations when wrong."""
    violations: list[FieldViolation] = []
    since = _checked_day("since_day", since_day, violations)
    until = _checked_day("until_day", until_day, violations)
    if since and until and since > until:
        violations.append(FieldViolation("until_day", f"is before since_day {since}"))
    if violations:
        raise InvalidArgumentError("invalid usage request", violations)
    return since, until


def queued_job(entry: QueueEntry) -> QueuedJob:
    """The SDK's view of a queue entry."""
    return QueuedJob(
        position=entry.position,
        job_id=entry.job_id,
        tenant=entry.tenant,
        model=entry.model,
        cards=entry.cards,
        priority=entry.priority,
        created_unix_ms=entry.created_unix_ms,
        reason=entry.reason if entry.reason is not None else WaitReason.OTHER,
        reason_text=entry.text,
    )


def tenant_status(row: TenantRow) -> TenantStatus:
    """The SDK's view of a tenant row."""
    models = sorted(row.quota.keys() | row.held.keys() | row.card_hours.keys())
    return TenantStatus(
        tenant=row.tenant,
        weight=row.weight,
        configured=row.configured,
        models=tuple(
            TenantModelStatus(
                model=m,
                quota=row.quota.get(m, 0),
                borrowing_limit=row.borrowing_limit.get(m),
                held=row.held.get(m, 0),
                borrowed=row.borrowed.get(m, 0),
                card_hours=row.card_hours.get(m, 0.0),
            )
            for m in models
        ),
        fair_share=row.fair_share,
    )


class AccountingQueries:
    """Domain logic behind AccountingService."""

    def __init__(self, *, writer: StoreWriter, view: Callable[[], TenancyView]) -> None:
        """`view` gives the tenancy view (it may raise NotLeaderError on a follower)."""
        self._writer = writer
        self._view = view

    async def usage(
        self,
        caller: Caller,
        *,
        tenant: str = "",
        since_day: str = "",
        until_day: str = "",
        by: UsageGrouping = UsageGrouping.TENANT,
    ) -> UsageReport:
        """Recorded usage the caller may see, grouped by `by`."""
        scope = scoped_tenant(caller, tenant)
        since, until = checked_days(since_day, until_day)
        store = self._writer.store
        records = await self._writer.read(
            lambda: store.usage_records(tenant=scope, since_day=since, until_day=until)
        )
        return group_usage(records, by, tenant=scope or "", since_day=since, until_day=until)

    async def queue(self, caller: Caller, *, tenant: str = "") -> list[QueuedJob]:
        """Pending jobs in admission order (positions over every tenant's), the caller's."""
        scope = scoped_tenant(caller, tenant)
        entries = await self._view().queue()
        return [queued_job(e) for e in entries if scope is None or e.tenant == scope]

    async def tenants(self, caller: Caller) -> list[TenantStatus]:
        """Every tenant for an operator; a user's own."""
        scope = scoped_tenant(caller, "")
        rows = await self._view().tenants()
        return [tenant_status(r) for r in rows if scope is None or r.tenant == scope]
