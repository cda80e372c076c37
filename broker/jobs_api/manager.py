"""The jobs API in domain terms: submit, read, list, watch, cancel, explain and plan."""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from broker.control import CancelRequested
from broker.jobflow.driver import JobDriver
from broker.jobs_api.demand import demand_violations
from broker.jobs_api.hub import EventHub
from broker.store.protocol import JobFilter, NewJob, Page
from broker.validation import violations_against
from broker.writer import StoreWriter
from computenet.errors import (
    FieldViolation,
    InvalidArgumentError,
    JobAlreadyExistsError,
    JobNotCancellableError,
    JobNotFoundError,
    NotPlacedError,
    SpecError,
)
from computenet.spec import JobSpec
from computenet.types import (
    CandidateSite,
    EnergyInputs,
    InferenceDemand,
    Job,
    JobEvent,
    JobId,
    JobKind,
    JobState,
    Placement,
    SiteId,
    TenantId,
)
from topology import Topology

log = logging.getLogger(__name__)

MAX_REQUEST_ID_CHARS = 128
MAX_PAGE_SIZE = 1000
WATCH_POLL_S = 5.0
WATCH_BATCH = 1000


def new_job_id() -> JobId:
    """A fresh job id."""
    return JobId("job-" + uuid.uuid4().hex[:16])


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobManager:
    """Domain logic behind JobService; raises the typed errors of computenet.errors."""

    def __init__(
        self,
        *,
        writer: StoreWriter,
        hub: EventHub,
        topology: Topology,
        driver: Callable[[], JobDriver],
        pending_reasons: Callable[[], Mapping[str, str]],
        live_plan: Callable[[JobSpec], Awaitable[Placement]] | None = None,
    ) -> None:
        """`driver` gives the leader's job driver (NotLeaderError on a follower: cancels go
        to the leader); `pending_reasons` the leader's current reasons (empty on a follower);
        `live_plan` plans a spec on the leader's capacity now (NotLeaderError on a follower)."""
        self._writer = writer
        self._store = writer.store
        self._hub = hub
        self._topology = topology
        self._driver = driver
        self._pending_reasons = pending_reasons
        self._live_plan = live_plan

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check a spec against the topology; SpecError lists every field that refers to nothing."""
        violations = violations_against(spec, self._topology)
        if violations:
            raise SpecError("invalid job spec", violations)
        return spec

    async def submit(self, spec: JobSpec, request_id: str, tenant: TenantId) -> tuple[Job, bool]:
        """Make a job durable and return it with whether it was a duplicate submission."""
        if len(request_id) > MAX_REQUEST_ID_CHARS:
            raise InvalidArgumentError(
                "invalid request",
                [FieldViolation("request_id", f"at most {MAX_REQUEST_ID_CHARS} characters")],
            )
        self.validate(spec)
        outcome = await self._writer.submit(
            NewJob(
                job_id=new_job_id(),
                tenant=tenant,
                request_id=request_id or uuid.uuid4().hex,
                spec=spec,
                time_unix_ms=_now_ms(),
            )
        )
        if outcome.conflict or outcome.job is None:
            raise JobAlreadyExistsError(
                f"request id {request_id!r} was used before with a different spec"
            )
        return self._decorate(outcome.job), outcome.duplicate

    def _decorate(self, job: Job) -> Job:
        """Add the scheduler's current reason to a pending job."""
        if job.state == JobState.PENDING and not job.reason:
            reason = self._pending_reasons().get(job.job_id)
            if reason:
                return replace(job, reason=reason)
        return job

    async def get(self, job_id: JobId, tenant: TenantId | None = None) -> Job:
        """The job; JobNotFoundError if absent or not the caller's."""
        job = await self._writer.read(lambda: self._store.get_job(job_id))
        if job is None or (tenant is not None and job.tenant != tenant):
            raise JobNotFoundError(f"job {job_id!r} not found")
        return self._decorate(job)

    async def list(self, flt: JobFilter, page_size: int, page_token: str) -> Page:
        """A page of jobs."""
        size = min(max(page_size or 100, 1), MAX_PAGE_SIZE)
        try:
            page = await self._writer.read(lambda: self._store.list_jobs(flt, size, page_token))
        except ValueError:
            raise InvalidArgumentError(
                "invalid request", [FieldViolation("page_token", "malformed page token")]
            ) from None
        return Page(
            [self._decorate(j) for j in page.jobs], page.next_page_token, page.resume_tokens
        )

    async def history(
        self, job_id: JobId, tenant: TenantId | None = None, limit: int = WATCH_BATCH
    ) -> Sequence[JobEvent]:
        """The job's first `limit` events, oldest first; JobNotFoundError as `get`."""
        job = await self.get(job_id, tenant)
        query = functools.partial(self._store.events_after, 0, job_id=job.job_id, limit=limit)
        return await self._writer.read(query)

    async def cancel(self, job_id: JobId, reason: str, tenant: TenantId | None = None) -> Job:
        """Cancel: pending jobs at once, placed or running ones when their site confirms."""
        for _ in range(5):  # the job may move between our read and our write
            job = await self.get(job_id, tenant)
            if job.state == JobState.CANCELLED or job.cancel_requested:
                return job
            if job.state.is_final:
                raise JobNotCancellableError(f"job {job_id!r} already {job.state.value}")
            outcome = await self._driver().feed(job, CancelRequested(reason))
            if outcome.applied:
                return await self.get(job_id, tenant)
        return await self.get(job_id, tenant)

    async def explain(
        self, job_id: JobId, tenant: TenantId | None = None, *, live: bool = False
    ) -> Placement:
        """The stored explanation of the job's latest placement; with `live`, for a pending
        job, where it would go now: a fresh plan of its spec on the leader's capacity, every
        site with its verdict (NotLeaderError on a follower, so clients ask the leader).

        A job never placed has no stored one; the error then says why it waits, if the
        scheduler said.
        """
        job = await self.get(job_id, tenant)
        if live and job.state == JobState.PENDING and self._live_plan is not None:
            return await self._live_plan(job.spec)
        text = await self._writer.read(lambda: self._store.placement_json(job_id))
        if not text:
            why = f": {job.reason}" if job.reason else ""
            raise NotPlacedError(f"job {job_id!r} has not been placed yet{why}")
        return placement_from_json(text)

    async def report_demand(
        self,
        job_id: JobId,
        weights: Sequence[tuple[str, float]],
        tenant: TenantId | None = None,
    ) -> InferenceDemand:
        """Store where an inference job's users are now; InvalidArgumentError lists every
        problem (not an inference job, unknown region, negative weight)."""
        job = await self.get(job_id, tenant)
        violations = demand_violations(job, weights, self._topology)
        if violations:
            raise InvalidArgumentError("invalid demand report", violations)
        demand = InferenceDemand(job.job_id, {r: float(w) for r, w in weights})
        stored = await self._writer.write(lambda: self._store.save_demand(demand))
        log.info("demand reported job_id=%s regions=%d", job.job_id, len(stored.weights))
        return stored

    async def watch(
        self,
        after_sequence: int,
        *,
        job_id: JobId | None = None,
        tenant: TenantId | None = None,
        kind: JobKind | None = None,
        stop_at_final: bool = False,
    ) -> AsyncIterator[JobEvent]:
        """Events after a sequence number matching every filter given, as they are committed.

        The filters are applied by the store's query. Sequence numbers are committed in order,
        so once a query returns less than a full batch, every event up to the hub's sequence
        read before it has been seen, and the cursor skips past the ones the filters left out.
        """
        cursor = after_sequence
        query = functools.partial(
            self._store.events_after,
            job_id=job_id,
            tenant=tenant,
            kind=kind,
            limit=WATCH_BATCH,
        )
        while True:
            seen = self._hub.last_sequence  # read before querying, so no commit slips between
            events = await self._writer.read(functools.partial(query, cursor))
            for event in events:
                cursor = event.sequence
                yield event
                if stop_at_final and event.state.is_final:
                    return
            if len(events) < WATCH_BATCH:
                cursor = max(cursor, seen)
                await self._hub.wait_beyond(cursor, WATCH_POLL_S)


def placement_from_json(text: str) -> Placement:
    """Inverse of broker.jobflow.placement_loop.placement_to_json."""
    data = json.loads(text)
    return Placement(
        chosen=SiteId(data["chosen"]) if data.get("chosen") else None,
        candidates=tuple(
            CandidateSite(
                site=SiteId(c["site"]),
                feasible=c["feasible"],
                reason=c["reason"],
                terms_cny=c["terms"],
                total_cny=c["total_cny"],
                accelerator=c.get("accelerator", ""),
                run_hours=c.get("run_hours", 0.0),
                energy_inputs=_energy_inputs(c.get("energy_inputs")),
            )
            for c in data["candidates"]
        ),
        decision_ms=data.get("decision_ms", 0.0),
    )


def _energy_inputs(data: dict[str, Any] | None) -> EnergyInputs | None:
    """Inverse of EnergyInputs.to_dict (explanations stored before live inputs have none)."""
    if not data:
        return None
    return EnergyInputs(
        price_cny_per_kwh=float(data.get("price_cny_per_kwh", 0.0)),
        carbon_kg_per_kwh=float(data.get("carbon_kg_per_kwh", 0.0)),
        reported_unix_ms=int(data.get("reported_unix_ms", 0)),
    )
