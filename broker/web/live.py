"""Live updates for the console: server-sent events from the broker's own job event stream
(the same watch as WatchJobs) and site status changes from the leader's registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from broker.web.context import Console, Viewer
from broker.web.mapview import flow_origins
from broker.web.params import int_param, reject_unknown
from computenet.errors import ComputeNetError, NotLeaderError
from computenet.types import JobEvent, JobId

log = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the stream looks at site statuses (in memory) and whether to stop."""
KEEPALIVE_S = 15.0
"""A comment line at least this often keeps proxies from closing an idle stream."""
QUEUE_EVENTS = 2000
"""Events buffered per stream; a browser that cannot keep up is dropped and reconnects."""
JOB_CACHE = 2048


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What a live row and a map flow need beyond the event itself."""

    name: str
    kind: str
    tenant: str
    origins: tuple[str, ...]
    priority: int = 0
    resources: str = ""


class _Facts:
    """Job facts by id, read once per job through the jobs API and kept LRU."""

    def __init__(self, console: Console, viewer: Viewer) -> None:
        self._console = console
        self._viewer = viewer
        self._cache: OrderedDict[str, JobFacts | None] = OrderedDict()

    async def get(self, job_id: JobId) -> JobFacts | None:
        if job_id in self._cache:
            self._cache.move_to_end(job_id)
            return self._cache[job_id]
        try:
            job = await self._console.services.jobs.get(job_id, self._viewer.scope)
            spec = job.spec
            facts: JobFacts | None = JobFacts(
                spec.name,
                spec.kind,
                job.tenant,
                tuple(flow_origins(spec)),
                spec.priority,
                f"{spec.resources.count} × {spec.resources.accelerator or 'cpu'}",
            )
        except ComputeNetError:
            facts = None
        self._cache[job_id] = facts
        if len(self._cache) > JOB_CACHE:
            self._cache.popitem(last=False)
        return facts


def event_payload(event: JobEvent, facts: JobFacts | None) -> dict[str, object]:
    """The JSON a browser gets for one job event."""
    payload: dict[str, object] = {
        "seq": event.sequence,
        "job_id": event.job_id,
        "state": event.state.value,
        "site": event.site or "",
        "time_unix_ms": event.time_unix_ms,
        "cause": event.cause,
        "message": event.message[:500],
    }
    if facts is not None:
        payload.update(
            name=facts.name,
            kind=facts.kind,
            tenant=facts.tenant,
            origins=list(facts.origins),
            priority=facts.priority,
            resources=facts.resources,
        )
    return payload


def sse(event: str, data: object, event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def events_stream(console: Console, request: Request, viewer: Viewer) -> Response:
    """`GET /events?after=SEQ`: job events after SEQ (or from now) and site changes."""
    reject_unknown(request.query_params, frozenset({"after"}))
    resume = request.headers.get("last-event-id", "")
    params = {"after": resume} if resume.isdigit() else request.query_params
    after = int_param(params, "after", default=-1, low=0, high=2**62)
    if after < 0:
        after = console.services.hub.last_sequence
    return StreamingResponse(
        _stream(console, viewer, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(console: Console, viewer: Viewer, after: int) -> AsyncIterator[str]:
    queue: asyncio.Queue[JobEvent] = asyncio.Queue(QUEUE_EVENTS)
    pump = asyncio.create_task(_pump(console, viewer, after, queue))
    facts = _Facts(console, viewer)
    revision = -1
    loop = asyncio.get_running_loop()
    checked_s = sent_s = loop.time()
    try:
        yield sse("hello", {"after": after})
        while not console.stopping.is_set() and not pump.done():
            event: JobEvent | None = None
            with contextlib.suppress(TimeoutError):
                event = await asyncio.wait_for(queue.get(), TICK_S)
            if event is not None:
                payload = event_payload(event, await facts.get(event.job_id))
                yield sse("job", payload, event.sequence)
                sent_s = loop.time()
            if loop.time() - checked_s < TICK_S:
                continue
            # once a tick, busy or idle: the token, the sites, and a keepalive when silent
            checked_s = loop.time()
            if not console.still_valid(viewer):  # a revoked token ends its open streams
                yield sse("bye", {"reason": "your token is no longer valid"})
                return
            revision, sites = _site_changes(console, revision)
            if sites is not None:
                yield sse("sites", sites)
                sent_s = checked_s
            elif checked_s - sent_s >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                sent_s = checked_s
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump


async def _pump(
    console: Console, viewer: Viewer, after: int, queue: asyncio.Queue[JobEvent]
) -> None:
    """Feed the watch's events into the stream's queue; a full queue ends the stream."""
    async for event in console.services.jobs.watch(after, tenant=viewer.scope):
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("console stream dropped: the browser falls behind")
            return


def _site_changes(console: Console, revision: int) -> tuple[int, dict[str, str] | None]:
    """Site statuses if the registry changed since `revision` (None: unchanged or follower)."""
    try:
        federation = console.services.federation()
    except NotLeaderError:
        return revision, None
    now = federation.revision
    if now == revision:
        return revision, None
    return now, federation.statuses()
