"""Fixed-shape statements compiled once per dialect and run on the driver's cursor.

The statements of the write path (the submission batch, the sequence counter) never change
shape; building, compiling and executing them through SQLAlchemy for every batch cost more
CPU than the database spent running them. Each is compiled once from the table definitions
and executed with plain parameter rows on a cursor of the connection's driver, inside the
caller's SQLAlchemy transaction. Driver errors are raised as SQLAlchemy's exceptions; engine
events (`before_cursor_execute` and the like) do not see these statements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
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

    def query(self, connection: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run once with `values`; the rows it returns as column-name mappings."""
        params = self.params(values)
        with _cursor(connection, self.sql, params) as cursor:
            cursor.execute(self.sql, params)
            if cursor.description is None:
                return []
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> None:
        """Run once with `values`, ignoring any rows."""
        params = self.params(values)
        with _cursor(connection, self.sql, params) as cursor:
            cursor.execute(self.sql, params)

    def execute_many(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run once per row of `rows`, in one driver call."""
        params = [self.params(row) for row in rows]
        with _cursor(connection, self.sql, params) as cursor:
            cursor.executemany(self.sql, params)


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


@contextlib.contextmanager
def _cursor(connection: Connection, sql: str, params: Any) -> Iterator[Any]:
    """A cursor on `connection`'s driver connection, in its transaction; driver errors are
    raised as SQLAlchemy's (IntegrityError, OperationalError...), as `execute` would."""
    dialect = connection.dialect
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()
