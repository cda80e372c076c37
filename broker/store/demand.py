"""Rows of reported inference demand: the latest weights per user region of each job."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from broker.store import tables
from computenet.types import InferenceDemand, JobId


def save_demand(connection: Connection, demand: InferenceDemand) -> None:
    """Insert or replace the job's demand row (the newest report wins)."""
    values = {
        "job_id": demand.job_id,
        "weights_json": json.dumps(demand.weights, sort_keys=True),
        "reported_unix_ms": demand.reported_unix_ms,
    }
    changes = {k: v for k, v in values.items() if k != "job_id"}
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(tables.job_demand).values(values)
    connection.execute(statement.on_conflict_do_update(index_elements=["job_id"], set_=changes))


def read_demands(
    connection: Connection, job_ids: Sequence[JobId] | None, chunk: int
) -> dict[JobId, InferenceDemand]:
    """The stored demand of these jobs (every job's with None), by job id."""
    d = tables.job_demand
    queries = (
        [select(d)]
        if job_ids is None
        else [
            select(d).where(d.c.job_id.in_(list(job_ids[at : at + chunk])))
            for at in range(0, len(job_ids), chunk)
        ]
    )
    out: dict[JobId, InferenceDemand] = {}
    for query in queries:
        for row in connection.execute(query).mappings():
            job_id = JobId(row["job_id"])
            weights = {str(k): float(v) for k, v in json.loads(row["weights_json"]).items()}
            out[job_id] = InferenceDemand(job_id, weights, int(row["reported_unix_ms"]))
    return out
