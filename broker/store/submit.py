"""Group commit of submissions: idempotency checks and bulk inserts of jobs, keys and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from broker.store import statements, tables
from broker.store.codecs import first_event_row, job_to_row, key_to_row, spec_sha256
from broker.store.protocol import NewJob, SubmitOutcome
from broker.store.sequence import EventSequence
from broker.store.submission import Submission, Written, outcomes

_Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _KnownKey:
    """An idempotency key seen before: its spec hash, and where its job is."""

    spec_sha256: str
    written: Written
    """What a duplicate of it gets: the stored row, or the index of its batch entry."""


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
    return outcomes(batch, write_batch(connection, [Submission.of(new) for new in batch]))


def write_batch(connection: Connection, batch: Sequence[Submission]) -> list[Written]:
    """Write the batch on `connection`, inside the caller's write transaction.

    A key already stored, or used earlier in the batch, creates nothing: with the same spec
    it is a duplicate of that job, with another spec a conflict.
    """
    if not batch:
        return []
    sequence = EventSequence(connection)
    known = _known_keys(connection, {(s.tenant, s.request_id) for s in batch})
    inserts = _Inserts([], [], [])
    written = [_write_one(i, s, known, inserts, sequence) for i, s in enumerate(batch)]
    if inserts.jobs:
        dialect = connection.dialect
        statements.insert_row(dialect, tables.jobs).execute_many(connection, inserts.jobs)
        statements.insert_row(dialect, tables.idempotency_keys).execute_many(
            connection, inserts.keys
        )
        statements.insert_row(dialect, tables.job_events).execute_many(connection, inserts.events)
        sequence.save()
    return written


def _write_one(
    index: int,
    submission: Submission,
    known: dict[_Key, _KnownKey],
    inserts: _Inserts,
    sequence: EventSequence,
) -> Written:
    digest = spec_sha256(submission.spec_json)
    key = (submission.tenant, submission.request_id)
    earlier = known.get(key)
    if earlier is not None:
        return earlier.written if earlier.spec_sha256 == digest else Written(conflict=True)
    number = sequence.take()
    inserts.jobs.append(job_to_row(submission, number))
    inserts.keys.append(key_to_row(submission, digest))
    inserts.events.append(first_event_row(submission, number))
    known[key] = _KnownKey(digest, Written(same_as=index))
    return Written(sequence=number)


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
            job_row = {name: value for name, value in row.items() if name != "spec_sha256"}
            known[key] = _KnownKey(row["spec_sha256"], Written(earlier=job_row))
    return known


def _rounded_up(n: int) -> int:
    """`n` rounded up to a power of two: few distinct statement shapes, little padding."""
    return 1 << max(n - 1, 0).bit_length()
