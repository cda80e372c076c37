"""The store contract: what the broker persists and the invariants every implementation keeps.

All writes of one broker go through a single writer (see broker.writer), so sequence numbers
are assigned and committed in order: a reader that has seen sequence N never later finds a
smaller one appearing. Every method that writes does so in one transaction: it either fully
happens or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from broker.store.accounting import AttemptRun, UsageIncrement
from computenet.spec import JobSpec
from computenet.types import (
    InferenceDemand,
    Job,
    JobEvent,
    JobId,
    JobKind,
    JobState,
    SiteId,
    SiteStatus,
    StartFailure,
    TenantId,
)
from computenet.usage import UsageRecord


@dataclass(frozen=True, slots=True)
class NewJob:
    """A submission to make durable: the job, its idempotency key and its first event."""

    job_id: JobId
    tenant: TenantId
    request_id: str
    spec: JobSpec
    time_unix_ms: int


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """Result of one submission inside a batch.

    Exactly one of: `job` set with `duplicate` False (created), `job` set with `duplicate`
    True (the request id was known with the same spec: the earlier job), or `conflict` True
    (the request id was known with a different spec; nothing written).
    """

    job: Job | None
    duplicate: bool = False
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """One line of the capacity ledger: cards of one pool held for one attempt of a job.

    Written in the same transaction as the placement that takes it and deleted when the
    attempt ends (final state, loss, requeue or a completed move). `pool` is the accelerator
    model of the pool the cards come from ("" for host-only work); `expected_end_unix_ms`
    (0 if unknown) feeds queue-wait estimates.
    """

    job_id: JobId
    attempt: int
    site: SiteId
    pool: str
    count: int
    cpu_cores: float
    memory_gb: float
    expected_end_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """A compare-and-set state change of one job, recorded as one event.

    Applied only if the job's current state is in `expect_states` (empty: any non-final state)
    and, when `expect_attempt` is not None, its attempt equals it. `attempt` None keeps the
    job's attempt; `site` None keeps its site, "" clears it; `reason` None keeps the job's
    reason, a string replaces it; `exit_code` always replaces the job's exit code.
    `cancel_requested` and `migration_target` (None keeps, "" clears) are typed parts of the
    job's state; `pool` (None keeps) names the pool of the job's attempt. `release_hold`
    deletes the job's holds, then `holds` records new ones (one per
    pool the attempt takes cards from). `placement_json`, when set, replaces the stored
    explanation of the job's placement.

    Only broker.control builds transitions (a test enforces it); the store only applies them.
    """

    job_id: JobId
    new_state: JobState
    cause: str
    expect_states: frozenset[JobState] = frozenset()
    expect_attempt: int | None = None
    site: SiteId | str | None = None
    attempt: int | None = None
    message: str = ""
    reason: str | None = None
    exit_code: int | None = None
    holds: tuple[Hold, ...] = ()
    release_hold: bool = False
    placement_json: str | None = None
    cancel_requested: bool | None = None
    migration_target: SiteId | str | None = None
    pool: str | None = None
    start_failures: tuple[StartFailure, ...] | None = None
    """None keeps the job's failed starts; a tuple replaces them."""
    not_before_unix_ms: int | None = None
    """None keeps the job's earliest next placement time."""
    migration_checkpoint: bool | None = None
    """None keeps whether the job's move is with checkpoint (read only while it migrates)."""
    restore_ref: str | None = None
    """None keeps the checkpoint the job's next attempt restores from; a string replaces it
    ("" clears it)."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A lease and the fencing token a write is made under: the write happens only while that
    token is the lease's live token, checked in the write's own transaction."""

    lease: str
    token: int


class FenceLostError(RuntimeError):
    """A fenced write was refused: its token is no longer the lease's live token."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters of ListJobs; None means any."""

    states: frozenset[JobState] | None = None
    kind: JobKind | None = None
    site: SiteId | None = None
    tenant: TenantId | None = None


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """What the broker remembers of a site between restarts."""

    site_id: SiteId
    status: SiteStatus
    last_report_unix_ms: int = 0
    report_json: str = "{}"
    executor: str = ""
    agent_version: str = ""
    agent_epoch: str = ""
    drained: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """A page of jobs and the token of the next page ("" on the last)."""

    jobs: list[Job] = field(default_factory=list)
    next_page_token: str = ""
    resume_tokens: list[str] = field(default_factory=list)
    """The token resuming right after each job, in order, so a caller that must end the page
    early (its answer would be too large) can; empty if the store gives none."""


class Store(Protocol):
    """Durable state of the broker. Implementations: SQLite and PostgreSQL via sqlmodel."""

    def submit_jobs(self, batch: Sequence[NewJob]) -> list[SubmitOutcome]:
        """Make a batch of submissions durable in one transaction (group commit).

        For each: a known (tenant, request_id) with the same spec returns the earlier job as a
        duplicate; with a different spec, a conflict; otherwise the job (state pending), its
        idempotency key and its first event (cause "submitted") are inserted. Two entries of the
        same batch with the same key behave as if submitted one after the other.
        """
        ...

    def get_job(self, job_id: JobId) -> Job | None:
        """The job, or None."""
        ...

    def list_jobs(self, flt: JobFilter, page_size: int, page_token: str = "") -> Page:
        """Jobs matching the filter in submission order, a page at a time.

        Raises ValueError for a malformed page token.
        """
        ...

    def get_jobs(self, job_ids: Sequence[JobId]) -> list[Job]:
        """The jobs among these ids that exist, in submission order."""
        ...

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (states with none are omitted)."""
        ...

    def jobs_in_states(self, states: frozenset[JobState]) -> list[Job]:
        """Every job in one of these states, in submission order."""
        ...

    def apply(
        self,
        transitions: Sequence[Transition],
        *,
        fence: Fence | tuple[Fence, ...] | None = None,
    ) -> list[JobEvent | None]:
        """Apply compare-and-set transitions in one transaction, in order.

        Returns, per transition, the recorded event, or None if its expectation did not hold
        (nothing written for that one; the others still apply). With a `fence` (or several),
        raises FenceLostError and writes nothing unless each token is its lease's live token.
        """
        ...

    def placement_json(self, job_id: JobId) -> str | None:
        """The stored explanation of the job's latest placement, or None."""
        ...

    def save_explanations(self, items: Sequence[tuple[JobId, int, str]]) -> None:
        """Replace the stored explanation of (job, attempt, json) items; not a state change.

        An item whose job has moved on to another attempt is left alone.
        """
        ...

    def events_after(
        self,
        after_sequence: int,
        *,
        job_id: JobId | None = None,
        tenant: TenantId | None = None,
        kind: JobKind | None = None,
        limit: int = 1000,
    ) -> list[JobEvent]:
        """Events with sequence > after_sequence, oldest first, at most `limit`."""
        ...

    def last_sequence(self) -> int:
        """The highest event sequence number (0 if none)."""
        ...

    def holds(self) -> list[Hold]:
        """Every capacity hold."""
        ...

    def save_site(
        self, record: SiteRecord, *, fence: Fence | tuple[Fence, ...] | None = None
    ) -> None:
        """Insert or replace a site record; with a `fence`, only while its token holds
        (FenceLostError otherwise)."""
        ...

    def sites(self) -> list[SiteRecord]:
        """Every site record."""
        ...

    def save_demand(self, demand: InferenceDemand) -> InferenceDemand:
        """Replace the job's stored user demand with `demand`, stamped with the store's clock
        (returned); the job must exist."""
        ...

    def demands(self, job_ids: Sequence[JobId] | None = None) -> dict[JobId, InferenceDemand]:
        """The stored demand of these jobs (of every job with None); jobs without are absent."""

    def open_runs(self, *, ended_only: bool = False) -> list[AttemptRun]:
        """Attempt runs still running or not yet priced up to their end, oldest first; with
        `ended_only`, only those that ended.

        A transition that takes a job into RUNNING opens its attempt's run (with the cards the
        attempt holds then), and one that takes it out of RUNNING and MIGRATING, or to another
        attempt, closes it: both at the transition's own time, in its transaction.
        """
        ...

    def runs_of(self, job_id: JobId) -> list[AttemptRun]:
        """Every run of one job's attempts, by attempt."""
        ...

    def record_usage(
        self,
        increments: Sequence[UsageIncrement],
        *,
        fence: Fence | tuple[Fence, ...] | None = None,
    ) -> list[bool]:
        """Add priced increments in one transaction; per increment, whether it applied.

        One applies only if its run is accounted exactly up to its `from_unix_ms` (then the run
        is accounted up to its `to_unix_ms`, settled once that reaches its end); any other is
        skipped, so an increment computed twice, or from a stale read, is counted at most once.
        With a `fence`, raises FenceLostError and writes nothing unless its token is live.
        """
        ...

    def usage_records(
        self, *, tenant: TenantId | None = None, since_day: str = "", until_day: str = ""
    ) -> list[UsageRecord]:
        """Recorded usage summed per (tenant, site, model, CST day), in that order; `tenant`
        None for every tenant, days from `since_day` to `until_day` included ("": open)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
