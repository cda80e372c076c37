"""The console's read pages: map, sites, jobs, one job and rebalancing runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from broker.store.protocol import JobFilter
from broker.web.context import Console, Viewer
from broker.web.mapview import STATUS_COLOURS, flow_origins, layout
from broker.web.params import (
    id_param,
    job_query,
    reject_unknown,
    token_param,
)
from computenet.errors import NotLeaderError, NotPlacedError
from computenet.rebalance_types import RebalanceRunInfo
from computenet.types import ACTIVE_STATES, Job, JobId, JobKind, JobState, SiteId, TenantId

MAX_FLOWS = 200
"""Flows drawn at page load (the first active jobs by submission); live updates add the rest."""
RUNS_PAGE_SIZE = 10


@dataclass(frozen=True, slots=True)
class Flow:
    """A job drawn on the map: from its origins to its site."""

    job_id: str
    site: str
    origins: tuple[str, ...]
    state: str


def job_flow(job: Job) -> Flow | None:
    """The map flow of an active job (None without a site)."""
    if job.site is None:
        return None
    return Flow(job.job_id, job.site, tuple(flow_origins(job.spec)), job.state.value)


async def map_page(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/`: the topology with site statuses and the viewer's active jobs as flows."""
    reject_unknown(request.query_params, frozenset())
    services = console.services
    statuses: dict[str, str] = {}
    follower = ""
    try:
        statuses = services.federation().statuses()
    except NotLeaderError as exc:
        follower = exc.message
    page = await services.jobs.list(
        JobFilter(states=frozenset(ACTIVE_STATES), tenant=viewer.scope), MAX_FLOWS, ""
    )
    flows = [f for f in (job_flow(j) for j in page.jobs) if f is not None]
    drawn = layout(services.topology, statuses)
    data = {
        "positions": drawn.positions,
        "flows": [_flow_dict(f) for f in flows],
        "colours": STATUS_COLOURS,
    }
    return console.render(
        "map.html",
        viewer,
        page="map",
        map=drawn,
        flows=flows,
        more_flows=bool(page.next_page_token),
        follower=follower,
        colours=STATUS_COLOURS,
        data_json=json.dumps(data).replace("<", "\\u003c"),
        last_sequence=services.hub.last_sequence,
    )


def _flow_dict(flow: Flow) -> dict[str, object]:
    return {
        "job_id": flow.job_id,
        "site": flow.site,
        "origins": list(flow.origins),
        "state": flow.state,
    }


@dataclass(frozen=True, slots=True)
class SiteRow:
    """One site of the sites page."""

    site_id: str
    name: str
    province: str
    side: str
    status: str
    pools: list[dict[str, object]]
    running_jobs: int
    last_report_unix_ms: int
    capacity_stale: bool
    capacity_error: str
    price_cny_per_kwh: float
    carbon_kg_per_kwh: float


async def sites_page(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/sites`: every site's pools through the ledger, status, last report, live power."""
    reject_unknown(request.query_params, frozenset())
    federation = console.services.federation()
    views = await federation.views()
    rows = []
    for site_id in federation.site_ids():
        info = views[site_id]
        live = federation.live_price(site_id)
        rows.append(
            SiteRow(
                site_id=info.site_id,
                name=info.name,
                province=info.province,
                side=info.side,
                status=info.status.value,
                pools=[
                    {
                        "model": p.model,
                        "allocatable": p.allocatable,
                        "held": p.held,
                        "in_use": p.in_use,
                        "free": p.free,
                    }
                    for p in info.pools
                ],
                running_jobs=info.running_jobs,
                last_report_unix_ms=info.last_report_unix_ms,
                capacity_stale=info.capacity_stale,
                capacity_error=info.capacity_error,
                price_cny_per_kwh=live.price_cny_per_kwh,
                carbon_kg_per_kwh=live.carbon_kg_per_kwh,
            )
        )
    return console.render(
        "sites.html",
        viewer,
        page="sites",
        sites=rows,
        colours=STATUS_COLOURS,
        last_sequence=console.services.hub.last_sequence,
    )


async def jobs_page(console: Console, request: Request, viewer: Viewer) -> Response:
    """`/jobs`: one page of the viewer's jobs matching the filters (ListJobs' page tokens)."""
    query = job_query(request.query_params)
    scope = viewer.scope
    hidden = scope is not None and query.tenant not in ("", scope)
    jobs: list[Job] = []
    next_token = ""
    if not hidden:
        flt = JobFilter(
            states=frozenset({query.state}) if query.state else None,
            kind=query.kind,
            site=SiteId(query.site) if query.site else None,
            tenant=scope if scope is not None else (TenantId(query.tenant) or None),
        )
        page = await console.services.jobs.list(flt, query.page_size, query.page_token)
        jobs, next_token = page.jobs, page.next_page_token
    return console.render(
        "jobs.html",
        viewer,
        page="jobs",
        jobs=jobs,
        query=query,
        next_link=query.link(page_token=next_token) if next_token else "",
        first_link=query.link(page_token="") if query.page_token else "",
        states=[s.value for s in JobState],
        kinds=[k.value for k in JobKind],
        hidden=hidden,
        last_sequence=console.services.hub.last_sequence,
    )


async def job_page(console: Console, request: Request, viewer: Viewer, job_id: str) -> Response:
    """`/jobs/ID`: spec, event timeline and the placement explanation."""
    reject_unknown(request.query_params, frozenset())
    jobs = console.services.jobs
    job = await jobs.get(_job_id(job_id), viewer.scope)
    events = await jobs.history(job.job_id, viewer.scope)
    explanation, not_placed = None, ""
    pending = job.state == JobState.PENDING
    try:
        # a pending job: where it would go now (the leader plans it live), as `computenet explain`
        explanation = await jobs.explain(job.job_id, viewer.scope, live=pending)
    except NotLeaderError:
        not_placed = f"waiting: {job.reason}" if job.reason else "waiting; the leader plans it"
    except NotPlacedError as exc:
        not_placed = exc.message
    terms: list[str] = []
    if explanation is not None:
        for candidate in explanation.candidates:
            terms.extend(t for t in candidate.terms_cny if t not in terms)
    return console.render(
        "job.html",
        viewer,
        page="jobs",
        job=job,
        spec_json=json.dumps(job.spec.model_dump(mode="json", exclude_defaults=True), indent=2),
        events=events,
        explanation=explanation,
        terms=terms,
        not_placed=not_placed,
        last_sequence=console.services.hub.last_sequence,
    )


def _job_id(raw: str) -> JobId:
    return JobId(id_param({"job_id": raw}, "job_id"))


async def rebalance_page(
    console: Console,
    request: Request,
    viewer: Viewer,
    *,
    planned: RebalanceRunInfo | None = None,
) -> Response:
    """`/rebalance` (operators): runs newest first, with a just-planned run if given."""
    viewer.require_operator("rebalancing")
    params: Mapping[str, str] = request.query_params if request.method == "GET" else {}
    reject_unknown(params, frozenset({"page_token"}))
    token = token_param(params)
    history = await console.services.rebalance().history(RUNS_PAGE_SIZE, token)
    return console.render(
        "rebalance.html",
        viewer,
        page="rebalance",
        runs=history.runs,
        next_token=history.next_page_token,
        planned=planned,
    )
