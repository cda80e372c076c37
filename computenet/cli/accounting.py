"""`computenet usage`, `computenet queue` and `computenet tenants`: who used and who waits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from computenet.cli.common import BrokerOption, JsonOption, TimeoutOption, connect, console
from computenet.cli.safe_text import echo
from computenet.cli.tables import (
    Column,
    Grid,
    OutputOption,
    emit_document,
    is_document,
    output_format,
    print_grid,
)
from computenet.client import DEFAULT_BROKER, DEFAULT_TIMEOUT_S
from computenet.usage import (
    QueuedJob,
    TenantStatus,
    UsageGrouping,
    UsageReport,
    totals_dict,
    usage_csv,
)

TenantOption = Annotated[
    str,
    typer.Option(
        "--tenant", help="Only this tenant (operators; a user sees its own tenant anyway)."
    ),
]


def usage_dict(report: UsageReport) -> dict[str, Any]:
    """The JSON document of a usage report."""
    return {
        "by": report.by.value,
        "tenant": report.tenant,
        "since": report.since_day,
        "until": report.until_day,
        "groups": [{report.by.value: g.key, **totals_dict(g.totals)} for g in report.groups],
        "total": totals_dict(report.total),
    }


def _parse_day(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise typer.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}") from None


def usage(
    tenant: TenantOption = "",
    since: Annotated[
        str | None, typer.Option("--since", help="First day included, YYYY-MM-DD (CST).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last day included, YYYY-MM-DD (CST).")
    ] = None,
    by: Annotated[
        UsageGrouping, typer.Option("--by", help="Group by tenant, site, model or day.")
    ] = UsageGrouping.TENANT,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV: a header row and one row per group.")
    ] = False,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Recorded usage: card-hours, energy, carbon and cost (card rent plus energy) in CNY."""
    fmt = output_format(output, as_json)
    if fmt is not None and as_csv:
        raise typer.BadParameter("give at most one of --json, -o and --csv")
    since_day, until_day = _parse_day(since), _parse_day(until)
    with connect(broker, timeout_s) as client:
        report = client.usage(tenant=tenant or None, since=since_day, until=until_day, by=by)
    if is_document(fmt):
        emit_document(usage_dict(report), fmt)
        return
    if as_csv:
        typer.echo(usage_csv(report), nl=False)
        return
    scope = report.tenant or "all tenants"
    window = f"{report.since_day or 'start'} to {report.until_day or 'now'}"
    echo(f"usage of {scope}, {window} (days in CST), by {report.by.value}")
    print_grid(usage_table(report), fmt, console())


def usage_table(report: UsageReport) -> Grid:
    """One row per group and a total: card-hours and cost always, the rest as room allows."""
    grid = Grid(
        [
            Column(report.by.value),
            Column("card-hours", "right"),
            Column("kWh", "right", drop=2),
            Column("CO2 kg", "right", drop=3),
            Column("cards CNY", "right", drop=1),
            Column("energy CNY", "right", drop=1),
            Column("CNY", "right"),
        ]
    )
    rows = [(g.key, g.totals) for g in report.groups] + [("total", report.total)]
    for key, t in rows:
        figures = (t.card_hours, t.kwh, t.carbon_kg, t.card_cny, t.energy_cny, t.cost_cny)
        grid.add(key, *(f"{v:,.2f}" for v in figures))
    return grid


def _when(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def queued_dict(job: QueuedJob) -> dict[str, Any]:
    """The JSON record of a queued job."""
    return {
        "position": job.position,
        "job_id": job.job_id,
        "tenant": job.tenant,
        "model": job.model,
        "cards": job.cards,
        "priority": job.priority,
        "created_unix_ms": job.created_unix_ms,
        "reason": job.reason.value,
        "reason_text": job.reason_text,
    }


def queue(
    tenant: TenantOption = "",
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Pending jobs in admission order, each with the reason it waits."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        jobs = client.queue(tenant=tenant or None)
    if is_document(fmt):
        emit_document([queued_dict(j) for j in jobs], fmt)
        return
    if not jobs:
        echo("no pending jobs")
        return
    print_grid(queue_table(jobs), fmt, console())


def queue_table(jobs: list[QueuedJob]) -> Grid:
    """Position, job, tenant and reason always; the rest as room allows; why last."""
    grid = Grid(
        [
            Column("#", "right"),
            Column("job"),
            Column("tenant"),
            Column("cards", drop=1),
            Column("priority", "right", drop=3),
            Column("submitted", drop=2),
            Column("reason"),
            Column("why", prose=True),
        ],
        key=1,
    )
    for j in jobs:
        cards = f"{j.cards} {j.model or 'any'}" if j.cards else "-"
        grid.add(
            j.position, j.job_id, j.tenant, cards, j.priority, _when(j.created_unix_ms),
            j.reason.value, j.reason_text,
        )  # fmt: skip
    return grid


def tenant_dict(status: TenantStatus) -> dict[str, Any]:
    """The JSON record of a tenant."""
    return {
        "tenant": status.tenant,
        "weight": status.weight,
        "configured": status.configured,
        "fair_share": status.fair_share,
        "models": {
            m.model: {
                "quota": m.quota,
                "borrowing_limit": m.borrowing_limit,
                "held": m.held,
                "borrowed": m.borrowed,
                "card_hours": m.card_hours,
            }
            for m in status.models
        },
    }


def tenants(
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Each tenant's quota, borrowed and held cards, card-hours and fair share by model."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        statuses = client.tenants()
    if is_document(fmt):
        emit_document([tenant_dict(t) for t in statuses], fmt)
        return
    print_grid(tenants_table(statuses), fmt, console())


def tenants_table(statuses: list[TenantStatus]) -> Grid:
    """A row per tenant and model: quota, held and borrowed cards always, the rest as room
    allows."""
    grid = Grid(
        [
            Column("tenant"),
            Column("weight", "right", drop=2),
            Column("share", "right", drop=3),
            Column("model"),
            Column("quota", "right"),
            Column("borrow limit", "right", drop=1),
            Column("held", "right"),
            Column("borrowed", "right"),
            Column("card-h", "right", drop=4),
        ]
    )
    for t in statuses:
        head = (t.tenant + ("" if t.configured else " (unlisted)"), f"{t.weight:g}")
        share = f"{t.fair_share:.3f}"
        for i, m in enumerate(t.models or ()):
            limit = "none" if m.borrowing_limit is None else str(m.borrowing_limit)
            first = (*head, share) if i == 0 else ("", "", "")
            grid.add(*first, m.model, m.quota, limit, m.held, m.borrowed, f"{m.card_hours:,.1f}")
        if not t.models:
            grid.add(*head, share, "-", "", "", "", "", "")
    return grid
