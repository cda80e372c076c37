"""Schema migrations: they match the table classes, are idempotent, and survive racing opens."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from broker.store import open_store, tables
from broker.store.engine import create_store_engine
from broker.store.migrate import current_revision, head_revision, upgrade_to_head

REPO_ROOT = Path(__file__).resolve().parents[2]


def _count_ddl(engine: Engine) -> list[str]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("CREATE", "ALTER", "DROP")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return statements


def test_migrated_schema_matches_the_table_classes(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, tables.metadata) == []
    finally:
        engine.dispose()


def test_upgrading_a_migrated_database_is_a_no_op(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        ddl = _count_ddl(engine)
        upgrade_to_head(engine)
        assert ddl, "the first upgrade creates the schema"
        ddl.clear()
        upgrade_to_head(engine)
        upgrade_to_head(engine)
        assert ddl == []
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()


def test_in_memory_sqlite_works() -> None:
    with open_store("sqlite://") as store:
        assert store.last_sequence() == 0 and store.dialect == "sqlite"


def test_sqlite_connections_are_durable(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas["journal_mode"] == "wal"
        assert pragmas["synchronous"] == 2  # FULL
        assert pragmas["foreign_keys"] == 1 and (pragmas["busy_timeout"] or 0) > 0
    finally:
        engine.dispose()


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(ValueError):
        open_store("mysql://localhost/x")


_RACER = textwrap.dedent(
    """
    import sys
    from broker.store import open_store
    from tests.store.factories import new_job
    url, name = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()  # every racer is loaded; open the new database at once
    with open_store(url) as store:
        [outcome] = store.submit_jobs([new_job(name)])
        assert outcome.job is not None
    """
)


@pytest.mark.timeout(120)
def test_processes_opening_a_new_database_at_once_migrate_it_once(store_url: str) -> None:
    racers = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, store_url, f"racer-{i}"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(racers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=30)[1]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    errors = [proc.communicate(timeout=90)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * racers, errors
    engine = create_store_engine(store_url)
    try:
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
            count = connection.execute(select(func.count()).select_from(tables.jobs)).scalar()
        assert count == racers
    finally:
        engine.dispose()
    with open_store(store_url) as store:
        assert [e.sequence for e in store.events_after(0)] == [1, 2, 3, 4]
