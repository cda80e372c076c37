"""Usage reports, the pending queue and tenants: domain objects <-> AccountingService messages."""

from __future__ import annotations

from computenet.usage import (
    QueuedJob,
    TenantModelStatus,
    TenantStatus,
    UsageGroup,
    UsageGrouping,
    UsageReport,
    UsageTotals,
    WaitReason,
)
from computenet.v1 import accounting_service_pb2 as pb

_GROUPING = {
    UsageGrouping.TENANT: pb.USAGE_GROUPING_TENANT,
    UsageGrouping.SITE: pb.USAGE_GROUPING_SITE,
    UsageGrouping.MODEL: pb.USAGE_GROUPING_MODEL,
    UsageGrouping.DAY: pb.USAGE_GROUPING_DAY,
}
_GROUPING_BACK = {v: k for k, v in _GROUPING.items()}
_REASON = {
    WaitReason.OTHER: pb.WAIT_REASON_UNSPECIFIED,
    WaitReason.OVER_QUOTA: pb.WAIT_REASON_OVER_QUOTA,
    WaitReason.BEHIND_FAIR_SHARE: pb.WAIT_REASON_BEHIND_FAIR_SHARE,
    WaitReason.NO_CAPACITY: pb.WAIT_REASON_NO_CAPACITY,
    WaitReason.SITE_DRAINING: pb.WAIT_REASON_SITE_DRAINING,
}
_REASON_BACK = {v: k for k, v in _REASON.items()}


def grouping_to_proto(by: UsageGrouping) -> pb.UsageGrouping.ValueType:
    """The wire value of a grouping."""
    return _GROUPING[by]


def grouping_from_proto(value: int) -> UsageGrouping | None:
    """The grouping of a wire value: TENANT for UNSPECIFIED, None for an unknown value."""
    if value == pb.USAGE_GROUPING_UNSPECIFIED:
        return UsageGrouping.TENANT
    return _GROUPING_BACK.get(value)  # type: ignore[call-overload]


def usage_totals_to_proto(totals: UsageTotals) -> pb.UsageTotals:
    """Totals on the wire, with their cost."""
    return pb.UsageTotals(
        card_hours=totals.card_hours,
        kwh=totals.kwh,
        carbon_kg=totals.carbon_kg,
        card_cny=totals.card_cny,
        energy_cny=totals.energy_cny,
        cost_cny=totals.cost_cny,
    )


def usage_totals_from_proto(message: pb.UsageTotals) -> UsageTotals:
    """Totals from the wire (the cost is recomputed from its parts)."""
    return UsageTotals(
        card_hours=message.card_hours,
        kwh=message.kwh,
        carbon_kg=message.carbon_kg,
        card_cny=message.card_cny,
        energy_cny=message.energy_cny,
    )


def usage_report_to_proto(report: UsageReport) -> pb.GetUsageResponse:
    """A usage report as GetUsage answers it."""
    return pb.GetUsageResponse(
        by=grouping_to_proto(report.by),
        groups=[
            pb.UsageGroup(key=g.key, totals=usage_totals_to_proto(g.totals)) for g in report.groups
        ],
        total=usage_totals_to_proto(report.total),
        tenant=report.tenant,
        since_day=report.since_day,
        until_day=report.until_day,
    )


def usage_report_from_proto(message: pb.GetUsageResponse) -> UsageReport:
    """A usage report from GetUsage's answer."""
    return UsageReport(
        by=grouping_from_proto(message.by) or UsageGrouping.TENANT,
        groups=tuple(UsageGroup(g.key, usage_totals_from_proto(g.totals)) for g in message.groups),
        total=usage_totals_from_proto(message.total),
        tenant=message.tenant,
        since_day=message.since_day,
        until_day=message.until_day,
    )


def queued_job_to_proto(job: QueuedJob) -> pb.QueuedJob:
    """A queue entry on the wire."""
    return pb.QueuedJob(
        position=job.position,
        job_id=job.job_id,
        tenant=job.tenant,
        model=job.model,
        cards=job.cards,
        priority=job.priority,
        created_unix_ms=job.created_unix_ms,
        reason=_REASON[job.reason],
        reason_text=job.reason_text,
    )


def queued_job_from_proto(message: pb.QueuedJob) -> QueuedJob:
    """A queue entry from the wire (an unknown reason reads as OTHER)."""
    return QueuedJob(
        position=message.position,
        job_id=message.job_id,
        tenant=message.tenant,
        model=message.model,
        cards=message.cards,
        priority=message.priority,
        created_unix_ms=message.created_unix_ms,
        reason=_REASON_BACK.get(message.reason, WaitReason.OTHER),  # type: ignore[call-overload]
        reason_text=message.reason_text,
    )


def tenant_status_to_proto(status: TenantStatus) -> pb.TenantStatus:
    """A tenant on the wire."""
    return pb.TenantStatus(
        tenant=status.tenant,
        weight=status.weight,
        configured=status.configured,
        models=[
            pb.TenantModel(
                model=m.model,
                quota=m.quota,
                borrowing_limit=m.borrowing_limit or 0,
                borrowing_unlimited=m.borrowing_limit is None,
                held=m.held,
                borrowed=m.borrowed,
                card_hours=m.card_hours,
            )
            for m in status.models
        ],
        fair_share=status.fair_share,
    )


def tenant_status_from_proto(message: pb.TenantStatus) -> TenantStatus:
    """A tenant from the wire."""
    return TenantStatus(
        tenant=message.tenant,
        weight=message.weight,
        configured=message.configured,
        models=tuple(
            TenantModelStatus(
                model=m.model,
                quota=m.quota,
                borrowing_limit=None if m.borrowing_unlimited else m.borrowing_limit,
                held=m.held,
                borrowed=m.borrowed,
                card_hours=m.card_hours,
            )
            for m in message.models
        ),
        fair_share=message.fair_share,
    )
