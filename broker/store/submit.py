"""Group commit of submissions: idempotency checks and bulk inserts of jobs, keys and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from broker.store import statements, tables
from broker.store.codecs import Row, event_to_row, job_from_row, job_to_row, spec_sha256
from broker.store.protocol import NewJob, SubmitOutcome
from broker.store.sequence import EventSequence
from computenet.types import Job, JobEvent, JobState

SUBMITTED_CAUSE = "submitted"
"""Cause of every job's first event."""

_Key = tuple[str, str]


@dataclass(slots=True)
class _KnownKey:
    """An idempotency key seen before: its spec hash and its job (parsed on first need)."""

    spec_sha256: str
    row: Row | None = None
    job: Job | None = None

    def resolve(self) -> Job:
        if self.job is None:
            assert self.row is not None
            self.job = job_from_row(self.row)
        return self.job


@dataclass(slots=True)
class _Inserts:
    """Rows of the batch's new submissions, inserted together at the end."""

    jobs: list[dict[str, Any]]
    keys: list[dict[str, Any]]
    events: list[dict[str, Any]]


def submit_batch(connection: Connection, batch: Sequence[NewJob]) -> list[SubmitOutcome]:
    """Make the batch durable on `connection`, inside the caller's write transaction."""
    if not batch:
        return []
    sequence = EventSequence(connection)
    known = _known_keys(connection, {(new.tenant, new.request_id) for new in batch})
    inserts = _Inserts([], [], [])
    outcomes = [_submit_one(new, known, inserts, sequence) for new in batch]
    if inserts.jobs:
        dialect = connection.dialect
        statements.insert_row(dialect, tables.jobs).execute_many(connection, inserts.jobs)
        statements.insert_row(dialect, tables.idempotency_keys).execute_many(
            connection, inserts.keys
        )
        statements.insert_row(dialect, tables.job_events).execute_many(connection, inserts.events)
        sequence.save()
    return outcomes


def _submit_one(
    new: NewJob, known: dict[_Key, _KnownKey], inserts: _Inserts, sequence: EventSequence
) -> SubmitOutcome:
    spec_json = new.spec.canonical_json()
    digest = spec_sha256(spec_json)
    key = (new.tenant, new.request_id)
    earlier = known.get(key)
    if earlier is not None:
        if earlier.spec_sha256 != digest:
            return SubmitOutcome(job=None, conflict=True)
        return SubmitOutcome(job=earlier.resolve(), duplicate=True)
    number = sequence.take()
    job_row = job_to_row(new, spec_json, number)
    job = job_from_row(job_row, spec=new.spec)
    event = JobEvent(
        sequence=number,
        job_id=new.job_id,
        state=JobState.PENDING,
        cause=SUBMITTED_CAUSE,
        time_unix_ms=new.time_unix_ms,
    )
    inserts.jobs.append(job_row)
    inserts.keys.append(
        {
            "tenant": new.tenant,
            "request_id": new.request_id,
            "job_id": new.job_id,
            "spec_sha256": digest,
        }
    )
    inserts.events.append(event_to_row(event, tenant=new.tenant, kind=new.spec.kind))
    known[key] = _KnownKey(spec_sha256=digest, job=job)
    return SubmitOutcome(job=job)


def _known_keys(connection: Connection, keys: set[_Key]) -> dict[_Key, _KnownKey]:
    """Keys of the batch already in the database, with their jobs, in one query."""
    tenants = sorted({tenant for tenant, _ in keys})
    request_ids = sorted({request_id for _, request_id in keys})
    nt, nr = _rounded_up(len(tenants)), _rounded_up(len(request_ids))
    statement = statements.known_keys(connection.dialect, nt, nr)
    values = {f"t{i}": tenants[min(i, len(tenants) - 1)] for i in range(nt)}
    values.update({f"r{i}": request_ids[min(i, len(request_ids) - 1)] for i in range(nr)})
    known: dict[_Key, _KnownKey] = {}
    for row in statement.query(connection, values):
        key = (row["tenant"], row["request_id"])
        if key in keys:
            known[key] = _KnownKey(row["spec_sha256"], row=row)
    return known


def _rounded_up(n: int) -> int:
    """`n` rounded up to a power of two: few distinct statement shapes, little padding."""
    return 1 << max(n - 1, 0).bit_length()
