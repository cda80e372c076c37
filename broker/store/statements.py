"""Fixed-shape statements compiled once per dialect and run on the driver's cursor.

The statements of the write path (the submission batch, the sequence counter) never change
shape; building, compiling and executing them through SQLAlchemy for every batch cost more
CPU than the database spent running them. Each is compiled once from the table definitions
and executed with plain parameter rows, inside the caller's SQLAlchemy transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.engine import Connection, Dialect, RowMapping
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from broker.store import tables


@dataclass(frozen=True, slots=True)
class Statement:
    """One compiled statement: its SQL text and how to lay out its parameters."""

    sql: str
    names: tuple[str, ...] | None
    """Parameter names in positional order, or None when the driver takes a mapping."""
    fixed: Mapping[str, Any]
    """Values bound when the statement was built (literals in its WHERE clause)."""

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """The parameters of one execution, in the driver's style."""
        if self.fixed:
            values = {**self.fixed, **values}
        if self.names is None:
            return values
        return tuple(values[name] for name in self.names)

    def query(self, connection: Connection, values: Mapping[str, Any]) -> list[RowMapping]:
        """Run once with `values`; the rows it returns as column-name mappings."""
        return list(connection.exec_driver_sql(self.sql, self.params(values)).mappings())

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> None:
        """Run once with `values`, ignoring any rows."""
        connection.exec_driver_sql(self.sql, self.params(values))

    def execute_many(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run once per row of `rows`, in one driver call."""
        connection.exec_driver_sql(self.sql, [self.params(row) for row in rows])


_CACHE: dict[tuple[str, str, str, str, tuple[int, ...]], Statement] = {}


def compiled(
    dialect: Dialect, name: str, build: Callable[[], ClauseElement], *shape: int
) -> Statement:
    """The statement `build()` compiled for `dialect`, cached under (`name`, `shape`)."""
    key = (dialect.name, dialect.driver, dialect.paramstyle, name, shape)
    statement = _CACHE.get(key)
    if statement is None:
        clause = cast(SQLCompiler, build().compile(dialect=dialect))
        names = tuple(clause.positiontup or ()) if dialect.positional else None
        fixed = {k: v for k, v in clause.params.items() if v is not None}
        statement = _CACHE[key] = Statement(str(clause), names, fixed)
    return statement


def insert_row(dialect: Dialect, table: Table) -> Statement:
    """INSERT of one full row of `table`; parameters are named after the columns."""
    return compiled(
        dialect,
        f"insert:{table.name}",
        lambda: insert(table).values({c.name: bindparam(c.name) for c in table.columns}),
    )


def known_keys(dialect: Dialect, tenants: int, request_ids: int) -> Statement:
    """Idempotency keys, with their jobs, among `tenants` x `request_ids` listed values.

    Parameters are `t0..` and `r0..`. Two plain IN lists rather than a row-value IN, which
    PostgreSQL plans as a scan: they select a superset through the primary key index, and
    the caller picks out the exact pairs. One statement is compiled per pair of lengths, so
    callers round lengths up (repeating a value) to keep the variety small.
    """

    def build() -> ClauseElement:
        k, j = tables.idempotency_keys, tables.jobs
        return (
            select(k.c.spec_sha256, j)
            .join(j, j.c.job_id == k.c.job_id)
            .where(k.c.tenant.in_([bindparam(f"t{i}") for i in range(tenants)]))
            .where(k.c.request_id.in_([bindparam(f"r{i}") for i in range(request_ids)]))
        )

    return compiled(dialect, "known_keys", build, tenants, request_ids)
