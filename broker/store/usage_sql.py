"""Attempt runs and priced usage in SQL: opened and closed by transitions, advanced by pricing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from broker.store import tables
from broker.store.accounting import AttemptRun, UsageIncrement, UsageLine
from computenet.types import JobId, SiteId, TenantId
from computenet.usage import UsageRecord, UsageTotals

RunKey = tuple[str, int]
"""(job id, attempt)."""


def start_runs(
    connection: Connection, started: Mapping[RunKey, tuple[str, str]], now_unix_ms: int
) -> None:
    """Open a run for each (job, attempt) -> (tenant, site) that just started running, with
    the cards the attempt holds; a run already open (a move abandoned, a repeat) is kept."""
    if not started:
        return
    h = tables.holds
    pools: dict[RunKey, dict[str, int]] = {key: {} for key in started}
    cores: dict[RunKey, float] = dict.fromkeys(started, 0.0)
    query = select(h.c.job_id, h.c.attempt, h.c.accelerator, h.c.count, h.c.cpu_cores).where(
        h.c.job_id.in_(sorted({job_id for job_id, _ in started}))
    )
    for job_id, attempt, model, count, cpu in connection.execute(query):
        key = (job_id, int(attempt))
        if key in pools:
            pools[key][model] = pools[key].get(model, 0) + int(count)
            cores[key] += float(cpu)
    rows = [
        {
            "job_id": job_id,
            "attempt": attempt,
            "tenant": tenant,
            "site": site,
            "pools_json": json.dumps(sorted(pools[(job_id, attempt)].items())),
            "cpu_cores": cores[(job_id, attempt)],
            "started_unix_ms": now_unix_ms,
            "ended_unix_ms": 0,
            "accounted_until_unix_ms": now_unix_ms,
            "settled": False,
        }
        for (job_id, attempt), (tenant, site) in started.items()
    ]
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(tables.attempt_runs).values(rows)
    connection.execute(statement.on_conflict_do_nothing(index_elements=["job_id", "attempt"]))


def end_runs(connection: Connection, ended: Sequence[RunKey], now_unix_ms: int) -> None:
    """Close the open runs of these (job, attempt) keys at `now_unix_ms`."""
    r = tables.attempt_runs
    for job_id, attempt in ended:
        connection.execute(
            update(r)
            .where(r.c.job_id == job_id, r.c.attempt == attempt, r.c.ended_unix_ms == 0)
            .values(
                ended_unix_ms=now_unix_ms,
                settled=r.c.accounted_until_unix_ms >= now_unix_ms,
            )
        )


def open_runs(connection: Connection, ended_only: bool = False) -> list[AttemptRun]:
    """Runs still running or not yet priced up to their end (with `ended_only`, only the
    latter), oldest first."""
    r = tables.attempt_runs
    query = select(r).where(r.c.settled.is_(False))
    if ended_only:
        query = query.where(r.c.ended_unix_ms > 0)
    query = query.order_by(r.c.started_unix_ms, r.c.job_id)
    return [_run(row) for row in connection.execute(query).mappings()]


def runs_of(connection: Connection, job_id: JobId) -> list[AttemptRun]:
    """Every run of one job, by attempt."""
    r = tables.attempt_runs
    query = select(r).where(r.c.job_id == job_id).order_by(r.c.attempt)
    return [_run(row) for row in connection.execute(query).mappings()]


def record_increments(connection: Connection, increments: Sequence[UsageIncrement]) -> list[bool]:
    """Add each increment whose run is accounted exactly up to its start; False for the others."""
    r = tables.attempt_runs
    results: list[bool] = []
    for inc in increments:
        if inc.to_unix_ms <= inc.from_unix_ms:
            raise ValueError(f"increment of {inc.job_id} is empty or ends before it starts")
        advanced = connection.execute(
            update(r)
            .where(
                r.c.job_id == inc.job_id,
                r.c.attempt == inc.attempt,
                r.c.accounted_until_unix_ms == inc.from_unix_ms,
            )
            .values(
                accounted_until_unix_ms=inc.to_unix_ms,
                settled=and_(r.c.ended_unix_ms > 0, r.c.ended_unix_ms <= inc.to_unix_ms),
            )
        ).rowcount
        results.append(advanced == 1)
        if advanced == 1:
            for line in inc.lines:
                _add_line(connection, inc, line)
    return results


_AMOUNTS = ("card_hours", "kwh", "carbon_kg", "card_cny", "energy_cny")


def _add_line(connection: Connection, inc: UsageIncrement, line: UsageLine) -> None:
    u = tables.usage
    row = {
        "job_id": inc.job_id,
        "attempt": inc.attempt,
        "model": line.model,
        "day": line.day,
        "tenant": inc.tenant,
        "site": inc.site,
        "cards": line.cards,
        **{name: getattr(line, name) for name in _AMOUNTS},
    }
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(u).values(row)
    added = {name: u.c[name] + statement.excluded[name] for name in _AMOUNTS}
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["job_id", "attempt", "model", "day"], set_=added
        )
    )


def usage_records(
    connection: Connection, tenant: TenantId | None, since_day: str, until_day: str
) -> list[UsageRecord]:
    """Usage summed per (tenant, site, model, day), days within [since_day, until_day] ("" for
    an open end), in that key order."""
    u = tables.usage
    keys = (u.c.tenant, u.c.site, u.c.model, u.c.day)
    query = select(*keys, *(func.sum(u.c[name]) for name in _AMOUNTS)).group_by(*keys)
    if tenant is not None:
        query = query.where(u.c.tenant == tenant)
    if since_day:
        query = query.where(u.c.day >= since_day)
    if until_day:
        query = query.where(u.c.day <= until_day)
    query = query.order_by(*keys)
    return [
        UsageRecord(
            tenant=row[0],
            site=row[1],
            model=row[2],
            day=row[3],
            totals=UsageTotals(*(float(v or 0.0) for v in row[4:])),
        )
        for row in connection.execute(query)
    ]


def _run(row: Mapping[Any, Any]) -> AttemptRun:
    return AttemptRun(
        job_id=JobId(row["job_id"]),
        attempt=int(row["attempt"]),
        tenant=TenantId(row["tenant"]),
        site=SiteId(row["site"]),
        pools=tuple((str(m), int(c)) for m, c in json.loads(row["pools_json"])),
        cpu_cores=float(row["cpu_cores"]),
        started_unix_ms=int(row["started_unix_ms"]),
        ended_unix_ms=int(row["ended_unix_ms"]),
        accounted_until_unix_ms=int(row["accounted_until_unix_ms"]),
    )
