"""The console's queue, tenants and usage pages, read through AccountingService's domain
service (the same admission order, reasons, quotas and usage records as gRPC)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from broker.web.context import Console, Viewer
from broker.web.params import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    UsageQuery,
    int_param,
    position_token,
    reject_unknown,
    usage_query,
)
from computenet.usage import USAGE_FIELDS, UsageReport, usage_csv

TENANTS_FRAGMENT = "tenants_table.html"
"""The tenants table alone: included by the queue page and served for live re-renders."""


async def queue_page(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/queue`: the viewer's pending jobs in admission order with why each waits, and the
    tenants' quotas, holds and fair shares."""
    params: Mapping[str, str] = request.query_params
    reject_unknown(params, frozenset({"page_size", "page_token"}))
    size = int_param(params, "page_size", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    start = position_token(params)
    accounting = console.services.accounting
    queue = await accounting.queue(viewer.caller)
    tenants = await accounting.tenants(viewer.caller)
    shown = queue[start : start + size]
    return console.render(
        "queue.html",
        viewer,
        page="queue",
        jobs=shown,
        waiting=len(queue),
        next_token=str(start + size) if start + size < len(queue) else "",
        page_size=size,
        first=start == 0,
        tenants=tenants,
        last_sequence=console.services.hub.last_sequence,
    )


async def tenants_fragment(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/queue/tenants`: the tenants table alone, which the queue page swaps in on job
    events (one request per burst of events, never per row)."""
    reject_unknown(request.query_params, frozenset())
    tenants = await console.services.accounting.tenants(viewer.caller)
    response = console.render(TENANTS_FRAGMENT, viewer, tenants=tenants)
    response.headers["cache-control"] = "no-store"
    return response


async def _report(console: Console, viewer: Viewer, query: UsageQuery) -> UsageReport:
    return await console.services.accounting.usage(
        viewer.caller,
        tenant=query.tenant,
        since_day=query.since,
        until_day=query.until,
        by=query.by,
    )


async def usage_page(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/usage`: recorded card-hours, energy, carbon and cost grouped by tenant, site, model
    or day; a user's own tenant, an operator's every tenant or the one asked for."""
    query = usage_query(request.query_params)
    report = await _report(console, viewer, query)
    return console.render(
        "usage.html",
        viewer,
        page="usage",
        query=query,
        report=report,
        fields=USAGE_FIELDS,
        groupings=[g.value for g in type(query.by)],
        csv_link="/usage.csv" + (f"?{query.link()}" if query.link() else ""),
    )


async def usage_download(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/usage.csv`: the usage page's report as `computenet usage --csv` prints it."""
    report = await _report(console, viewer, usage_query(request.query_params))
    name = f"usage-by-{report.by.value}.csv"
    return Response(
        usage_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "no-store",
        },
    )
