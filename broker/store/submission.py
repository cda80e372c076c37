"""Submissions as the store writes them, and what writing them did, in plain picklable tuples.

The batch writer needs only strings and numbers (the spec already as canonical JSON), so a
batch can be written by another process; the domain objects are rebuilt by whoever asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from broker.store.codecs import job_from_row
from broker.store.protocol import NewJob, SubmitOutcome
from computenet.types import Job, JobState


class Submission(NamedTuple):
    """One submission to write: job, idempotency key and first event in canonical form."""

    job_id: str
    tenant: str
    request_id: str
    kind: str
    spec_json: str
    """The spec's canonical JSON (stored, and hashed for idempotent resubmission)."""
    time_unix_ms: int

    @classmethod
    def of(cls, new: NewJob) -> Submission:
        """The submission of a new job."""
        return cls(
            new.job_id,
            new.tenant,
            new.request_id,
            new.spec.kind,
            new.spec.canonical_json(),
            new.time_unix_ms,
        )


class Written(NamedTuple):
    """What writing one submission did: exactly one field is set."""

    sequence: int | None = None
    """Created: the sequence number of its first event."""
    earlier: Mapping[str, Any] | None = None
    """Known key, same spec: the jobs row of the job it created before."""
    same_as: int | None = None
    """Same key as an earlier submission of the batch, same spec: that one's index."""
    conflict: bool = False
    """Known key, other spec: nothing written."""


def outcomes(batch: Sequence[NewJob], written: Sequence[Written]) -> list[SubmitOutcome]:
    """The submit outcomes of `batch`, from what writing it did (the specs are reused)."""
    out: list[SubmitOutcome] = []
    for new, result in zip(batch, written, strict=True):
        if result.sequence is not None:
            out.append(SubmitOutcome(job=created_job(new, result.sequence)))
        elif result.earlier is not None:
            out.append(SubmitOutcome(job=job_from_row(result.earlier), duplicate=True))
        elif result.same_as is not None:
            out.append(SubmitOutcome(job=out[result.same_as].job, duplicate=True))
        else:
            out.append(SubmitOutcome(job=None, conflict=True))
    return out


def created_job(new: NewJob, sequence: int) -> Job:
    """The job a submission created, its first event numbered `sequence`."""
    return Job(
        job_id=new.job_id,
        tenant=new.tenant,
        spec=new.spec,
        state=JobState.PENDING,
        last_sequence=sequence,
        created_unix_ms=new.time_unix_ms,
        updated_unix_ms=new.time_unix_ms,
        request_id=new.request_id,
    )
