"""Engines for the store: SQLite with durable pragmas and explicit transactions, or PostgreSQL."""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another process's lock before failing."""

BEGIN_OPTION = "computenet_sqlite_begin"
"""Execution option naming the SQLite BEGIN mode ("IMMEDIATE" for writers)."""


def create_store_engine(url: str) -> Engine:
    """An engine for `url`: sqlite (file or :memory:) or postgresql+psycopg."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"))
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_size=5,
            max_overflow=10,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={"connect_timeout": 10},
        )
    raise ValueError(f"unsupported store URL backend: {parsed.get_backend_name()}")


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions take the write lock at BEGIN on SQLite.

    Taking it up front means a transaction never has to upgrade a read lock, which under
    WAL would fail at once with SQLITE_BUSY instead of waiting for the busy timeout.
    """
    return engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


def _sqlite_engine(url: str, *, in_memory: bool) -> Engine:
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    }
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly in _on_sqlite_begin, not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _enter_wal(cursor: Any) -> None:
    """Switch the database to WAL, retrying while other processes switch it at the same time.

    Changing the journal mode needs an exclusive lock. When several connections to a new
    (rollback-journal) file try it at once, each holds a shared lock and wants the exclusive
    one; SQLite breaks that deadlock by answering SQLITE_BUSY at once, without the busy
    handler, so the wait has to happen here.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay_s = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay_s * random.uniform(0.5, 1.5))
        delay_s = min(0.2, delay_s * 2)
