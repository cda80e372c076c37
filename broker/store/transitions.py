"""Compare-and-set job transitions: checked in memory in order, then written in bulk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from broker.store import tables
from broker.store.accounting import RUNNING_STATES
from broker.store.codecs import event_to_row, hold_to_row, start_failures_to_json
from broker.store.protocol import Transition
from broker.store.sequence import EventSequence
from broker.store.usage_sql import RunKey, end_runs, start_runs
from computenet.types import JobEvent, JobState, SiteId

_MUTABLE = (
    "state",
    "site",
    "attempt",
    "reason",
    "exit_code",
    "placement_json",
    "cancel_requested",
    "migration_target",
    "pool",
    "start_failures_json",
    "not_before_unix_ms",
    "migration_checkpoint",
    "restore_ref",
)
_COLUMNS = ("job_id", "tenant", "kind", *_MUTABLE, "last_sequence", "updated_unix_ms")


@dataclass(slots=True)
class _Writes:
    """Everything a batch of transitions changes, collected before it is written."""

    touched: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    released: set[str] = field(default_factory=set)
    new_holds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs_started: dict[RunKey, tuple[str, str]] = field(default_factory=dict)
    """Attempts that started running: (job, attempt) -> (tenant, site)."""
    runs_ended: list[RunKey] = field(default_factory=list)
    """Attempts that stopped running."""


def apply_batch(
    connection: Connection, transitions: Sequence[Transition], now_unix_ms: int
) -> list[JobEvent | None]:
    """Apply `transitions` on `connection`, inside the caller's write transaction."""
    for t in transitions:
        for hold in t.holds:
            if hold.job_id != t.job_id:
                raise ValueError(f"hold of job {hold.job_id} in a transition of job {t.job_id}")
    if not transitions:
        return []
    sequence = EventSequence(connection)
    jobs = _load_jobs(connection, {t.job_id for t in transitions})
    writes = _Writes()
    results: list[JobEvent | None] = []
    for t in transitions:
        job = jobs.get(t.job_id)
        if job is None or not expectation_holds(t, JobState(job["state"]), job["attempt"]):
            results.append(None)
            continue
        results.append(_record(t, job, sequence.take(), now_unix_ms, writes))
    _write(connection, writes)
    end_runs(connection, writes.runs_ended, now_unix_ms)
    start_runs(connection, writes.runs_started, now_unix_ms)
    sequence.save()
    return results


def expectation_holds(t: Transition, state: JobState, attempt: int) -> bool:
    """Whether `t` applies to a job currently in `state` at `attempt`."""
    if t.expect_states and state not in t.expect_states:
        return False
    if not t.expect_states and state.is_final:
        return False
    return t.expect_attempt is None or t.expect_attempt == attempt


def _record(
    t: Transition, job: dict[str, Any], number: int, now_unix_ms: int, writes: _Writes
) -> JobEvent:
    """Update the in-memory job for `t` and queue its event and holds; return the event.

    `exit_code` describes the state being entered, so each transition replaces it (a
    requeue clears an old failure's exit code); `reason` is replaced only when one is given.
    Within one transition the old holds are released before the new one is recorded.
    """
    _note_run(t, job, writes)
    job["state"] = t.new_state.value
    if t.site is not None:
        job["site"] = t.site or None
    if t.attempt is not None:
        job["attempt"] = t.attempt
    if t.reason is not None:
        job["reason"] = t.reason
    job["exit_code"] = t.exit_code
    if t.placement_json is not None:
        job["placement_json"] = t.placement_json
    if t.cancel_requested is not None:
        job["cancel_requested"] = t.cancel_requested
    if t.migration_target is not None:
        job["migration_target"] = t.migration_target or None
    if t.pool is not None:
        job["pool"] = t.pool
    if t.start_failures is not None:
        job["start_failures_json"] = start_failures_to_json(t.start_failures)
    if t.not_before_unix_ms is not None:
        job["not_before_unix_ms"] = t.not_before_unix_ms
    if t.migration_checkpoint is not None:
        job["migration_checkpoint"] = t.migration_checkpoint
    if t.restore_ref is not None:
        job["restore_ref"] = t.restore_ref
    job["last_sequence"] = number
    job["updated_unix_ms"] = now_unix_ms
    event = JobEvent(
        sequence=number,
        job_id=t.job_id,
        state=t.new_state,
        cause=t.cause,
        time_unix_ms=now_unix_ms,
        site=SiteId(job["site"]) if job["site"] is not None else None,
        attempt=job["attempt"],
        message=t.message,
        exit_code=t.exit_code,
    )
    writes.touched[t.job_id] = job
    writes.events.append(event_to_row(event, tenant=job["tenant"], kind=job["kind"]))
    if t.release_hold:
        writes.released.add(t.job_id)
        writes.new_holds.pop(t.job_id, None)
    if t.holds:
        writes.new_holds.setdefault(t.job_id, []).extend(hold_to_row(h) for h in t.holds)
    return event


def _note_run(t: Transition, job: dict[str, Any], writes: _Writes) -> None:
    """Queue the start or end of the attempt's run (usage accounting) that `t` makes."""
    before = (job["state"], job["attempt"])
    attempt = t.attempt if t.attempt is not None else job["attempt"]
    after = (t.new_state.value, attempt)
    was_running = before[0] in RUNNING_STATES
    if was_running and (after[0] not in RUNNING_STATES or after[1] != before[1]):
        key = (t.job_id, before[1])
        if writes.runs_started.pop(key, None) is None:
            writes.runs_ended.append(key)
        # started and ended in one batch: it never ran for a measurable time
    if t.new_state == JobState.RUNNING and not (was_running and after[1] == before[1]):
        site = t.site if t.site else job["site"]
        if site:
            writes.runs_started[(t.job_id, attempt)] = (job["tenant"], site)


def _load_jobs(connection: Connection, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    j = tables.jobs
    columns = [j.c[name] for name in _COLUMNS]
    query = select(*columns).where(j.c.job_id.in_(sorted(job_ids))).with_for_update()
    return {row["job_id"]: dict(row) for row in connection.execute(query).mappings()}


def _write(connection: Connection, writes: _Writes) -> None:
    if not writes.touched:
        return
    j = tables.jobs
    changed = ("last_sequence", "updated_unix_ms", *_MUTABLE)
    statement = (
        update(j)
        .where(j.c.job_id == bindparam("b_job_id"))
        .values({name: bindparam(f"b_{name}") for name in changed})
    )
    params = [
        {f"b_{name}": job[name] for name in ("job_id", *changed)} for job in writes.touched.values()
    ]
    connection.execute(statement, params)
    connection.execute(insert(tables.job_events), writes.events)
    if writes.released:
        released = sorted(writes.released)
        connection.execute(delete(tables.holds).where(tables.holds.c.job_id.in_(released)))
    new_holds = [row for rows in writes.new_holds.values() for row in rows]
    if new_holds:
        connection.execute(insert(tables.holds), new_holds)
