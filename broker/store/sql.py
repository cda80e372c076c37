"""SqlStore: the Store contract over SQLite or PostgreSQL through SQLAlchemy and sqlmodel tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from broker.store import tables, usage_sql
from broker.store.accounting import AttemptRun, UsageIncrement
from broker.store.codecs import (
    event_from_row,
    hold_from_row,
    job_from_row,
    site_from_row,
    site_to_row,
)
from broker.store.demand import read_demands, save_demand
from broker.store.engine import writer
from broker.store.fencing import fence_holds
from broker.store.paging import decode_page_token, encode_page_token, filtered_jobs
from broker.store.protocol import (
    Fence,
    FenceLostError,
    Hold,
    JobFilter,
    NewJob,
    Page,
    SiteRecord,
    SubmitOutcome,
    Transition,
)
from broker.store.sequence import read_last_sequence
from broker.store.submit import submit_batch
from broker.store.transitions import apply_batch
from computenet.types import (
    InferenceDemand,
    Job,
    JobEvent,
    JobId,
    JobKind,
    JobState,
    TenantId,
)
from computenet.usage import UsageRecord

_IN_CHUNK = 500


def wall_clock_ms() -> int:
    """Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


class SqlStore:
    """The broker's durable state in a SQL database (see broker.store.protocol.Store).

    Each write method runs in one transaction on a writer connection (on SQLite its BEGIN
    takes the write lock at once); reads run on ordinary pooled connections. Safe to share
    between threads, except over in-memory SQLite, whose single shared connection is meant
    for single-threaded tests.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], int] = wall_clock_ms) -> None:
        """Use `engine`, whose database is already migrated; `clock` stamps transitions (ms)."""
        self._engine = engine
        self._writer = writer(engine)
        self._clock = clock

    @property
    def dialect(self) -> str:
        """The database dialect name ("sqlite" or "postgresql")."""
        return self._engine.dialect.name

    def submit_jobs(self, batch: Sequence[NewJob]) -> list[SubmitOutcome]:
        """See Store.submit_jobs."""
        if not batch:
            return []
        with self._writer.begin() as connection:
            return submit_batch(connection, batch)

    def get_job(self, job_id: JobId) -> Job | None:
        """See Store.get_job."""
        query = select(tables.jobs).where(tables.jobs.c.job_id == job_id)
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return job_from_row(row) if row is not None else None

    def list_jobs(self, flt: JobFilter, page_size: int, page_token: str = "") -> Page:
        """See Store.list_jobs; `page_size` must be positive."""
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        query = filtered_jobs(flt, decode_page_token(page_token)).limit(page_size + 1)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_page_token(rows[-1]["created_seq"]) if more else ""
        return Page(
            jobs=[job_from_row(row) for row in rows],
            next_page_token=token,
            resume_tokens=[encode_page_token(row["created_seq"]) for row in rows],
        )

    def get_jobs(self, job_ids: Sequence[JobId]) -> list[Job]:
        """See Store.get_jobs."""
        if not job_ids:
            return []
        jobs = tables.jobs
        rows: list[RowMapping] = []
        with self._engine.connect() as connection:
            for start in range(0, len(job_ids), _IN_CHUNK):
                chunk = list(job_ids[start : start + _IN_CHUNK])
                query = select(jobs).where(jobs.c.job_id.in_(chunk))
                rows.extend(connection.execute(query).mappings().all())
        rows.sort(key=lambda row: row["created_seq"])
        return [job_from_row(row) for row in rows]

    def count_by_state(self) -> dict[JobState, int]:
        """See Store.count_by_state."""
        jobs = tables.jobs
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        with self._engine.connect() as connection:
            return {JobState(state): int(n) for state, n in connection.execute(query)}

    def jobs_in_states(self, states: frozenset[JobState]) -> list[Job]:
        """See Store.jobs_in_states."""
        if not states:
            return []
        with self._engine.connect() as connection:
            rows = connection.execute(filtered_jobs(JobFilter(states=states))).mappings()
            return [job_from_row(row) for row in rows]

    def apply(
        self,
        transitions: Sequence[Transition],
        *,
        fence: Fence | tuple[Fence, ...] | None = None,
    ) -> list[JobEvent | None]:
        """See Store.apply; events are stamped with the store's clock."""
        if not transitions:
            return []
        with self._writer.begin() as connection:
            now = self._clock()
            _check_fences(connection, fence, now)
            return apply_batch(connection, transitions, now)

    def save_explanations(self, items: Sequence[tuple[JobId, int, str]]) -> None:
        """See Store.save_explanations."""
        if not items:
            return
        j = tables.jobs
        statement = (
            update(j)
            .where(j.c.job_id == bindparam("b_job_id"), j.c.attempt == bindparam("b_attempt"))
            .values(placement_json=bindparam("b_json"))
        )
        params = [{"b_job_id": i, "b_attempt": a, "b_json": text} for i, a, text in items]
        with self._writer.begin() as connection:
            connection.execute(statement, params)

    def placement_json(self, job_id: JobId) -> str | None:
        """See Store.placement_json."""
        j = tables.jobs
        query = select(j.c.placement_json).where(j.c.job_id == job_id)
        with self._engine.connect() as connection:
            value = connection.execute(query).scalar_one_or_none()
        return str(value) if value is not None else None

    def events_after(
        self,
        after_sequence: int,
        *,
        job_id: JobId | None = None,
        tenant: TenantId | None = None,
        kind: JobKind | None = None,
        limit: int = 1000,
    ) -> list[JobEvent]:
        """See Store.events_after; a `limit` below 1 returns nothing."""
        if limit < 1:
            return []
        e = tables.job_events
        query = select(e).where(e.c.sequence > after_sequence)
        if job_id is not None:
            query = query.where(e.c.job_id == job_id)
        if tenant is not None:
            query = query.where(e.c.tenant == tenant)
        if kind is not None:
            query = query.where(e.c.kind == kind.value)
        query = query.order_by(e.c.sequence).limit(limit)
        with self._engine.connect() as connection:
            return [event_from_row(row) for row in connection.execute(query).mappings()]

    def last_sequence(self) -> int:
        """See Store.last_sequence."""
        with self._engine.connect() as connection:
            return read_last_sequence(connection)

    def holds(self) -> list[Hold]:
        """See Store.holds; ordered by job, then attempt."""
        h = tables.holds
        query = select(h).order_by(h.c.job_id, h.c.attempt, h.c.id)
        with self._engine.connect() as connection:
            return [hold_from_row(row) for row in connection.execute(query).mappings()]

    def save_site(
        self, record: SiteRecord, *, fence: Fence | tuple[Fence, ...] | None = None
    ) -> None:
        """See Store.save_site."""
        with self._writer.begin() as connection:
            _check_fences(connection, fence, self._clock())
            _upsert_site(connection, record)

    def sites(self) -> list[SiteRecord]:
        """See Store.sites; ordered by site id."""
        query = select(tables.sites).order_by(tables.sites.c.site_id)
        with self._engine.connect() as connection:
            return [site_from_row(row) for row in connection.execute(query).mappings()]

    def save_demand(self, demand: InferenceDemand) -> InferenceDemand:
        """See Store.save_demand."""
        stamped = replace(demand, reported_unix_ms=self._clock())
        with self._writer.begin() as connection:
            save_demand(connection, stamped)
        return stamped

    def demands(self, job_ids: Sequence[JobId] | None = None) -> dict[JobId, InferenceDemand]:
        """See Store.demands."""
        with self._engine.connect() as connection:
            return read_demands(connection, job_ids, _IN_CHUNK)

    def open_runs(self, *, ended_only: bool = False) -> list[AttemptRun]:
        """See Store.open_runs."""
        with self._engine.connect() as connection:
            return usage_sql.open_runs(connection, ended_only)

    def runs_of(self, job_id: JobId) -> list[AttemptRun]:
        """See Store.runs_of."""
        with self._engine.connect() as connection:
            return usage_sql.runs_of(connection, job_id)

    def record_usage(
        self,
        increments: Sequence[UsageIncrement],
        *,
        fence: Fence | tuple[Fence, ...] | None = None,
    ) -> list[bool]:
        """See Store.record_usage."""
        if not increments:
            return []
        with self._writer.begin() as connection:
            _check_fences(connection, fence, self._clock())
            return usage_sql.record_increments(connection, increments)

    def usage_records(
        self, *, tenant: TenantId | None = None, since_day: str = "", until_day: str = ""
    ) -> list[UsageRecord]:
        """See Store.usage_records."""
        with self._engine.connect() as connection:
            return usage_sql.usage_records(connection, tenant, since_day, until_day)

    def close(self) -> None:
        """See Store.close; idempotent."""
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_fences(
    connection: Connection, fence: Fence | tuple[Fence, ...] | None, now_unix_ms: int
) -> None:
    """Raise FenceLostError unless every fence's token is its lease's live token."""
    for held in (fence,) if isinstance(fence, Fence) else (fence or ()):
        if not fence_holds(connection, held, now_unix_ms):
            raise FenceLostError(f"lease {held.lease!r} no longer has token {held.token}")


def _upsert_site(connection: Connection, record: SiteRecord) -> None:
    values = site_to_row(record)
    changes = {k: v for k, v in values.items() if k != "site_id"}
    if connection.dialect.name == "postgresql":
        pg = postgresql.insert(tables.sites).values(values)
        connection.execute(pg.on_conflict_do_update(index_elements=["site_id"], set_=changes))
    else:
        lite = sqlite.insert(tables.sites).values(values)
        connection.execute(lite.on_conflict_do_update(index_elements=["site_id"], set_=changes))
