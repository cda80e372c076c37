"""Storage faults become StorageUnavailableError (UNAVAILABLE with a retry hint), caused by the
real drivers: a read-only SQLite file and a PostgreSQL server that refuses the connection."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from broker.store import open_store
from broker.store.engine import create_store_engine
from broker.store.errors import (
    StorageUnavailableError,
    storage_unavailable,
    storage_unavailable_from_text,
    translating,
)
from broker.writer import StoreWriter
from computenet.errors import UnavailableError
from computenet.status import error_from_status, error_to_rich_status, status_code_for


def _caught(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("no error")


def test_a_write_to_a_read_only_sqlite_database_is_a_storage_fault(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    open_store(f"sqlite:///{path}").close()
    engine = create_store_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:

        def write() -> None:
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE t (x INTEGER)"))

        error = storage_unavailable(_caught(write))
        assert isinstance(error, StorageUnavailableError)
        assert "readonly" in error.message and error.retry_after_s > 0
    finally:
        engine.dispose()


def test_a_refused_postgresql_connection_is_a_storage_fault() -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_store_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    try:
        error = storage_unavailable(_caught(lambda: engine.connect()))
        assert isinstance(error, StorageUnavailableError), error
    finally:
        engine.dispose()


def test_other_errors_are_not_storage_faults() -> None:
    assert storage_unavailable(ValueError("bad")) is None
    assert storage_unavailable_from_text("IntegrityError: UNIQUE constraint failed") is None
    reported = storage_unavailable_from_text(
        "OperationalError: (sqlite3.OperationalError) database or disk is full\n[SQL: INSERT]"
    )
    assert reported is not None and "(database or disk is full)" in reported.message
    assert "SQL" not in reported.message


def test_the_writer_raises_storage_faults_typed_and_passes_others_through(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    open_store(f"sqlite:///{path}").close()
    engine = create_store_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    writer = StoreWriter(open_store("sqlite://"))

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))

    def broken() -> None:
        raise KeyError("a bug")

    async def main() -> None:
        with pytest.raises(StorageUnavailableError):
            await writer.write(write)
        with pytest.raises(StorageUnavailableError):
            await writer.read(write)
        with pytest.raises(KeyError):
            await writer.read(broken)

    try:
        asyncio.run(main())
    finally:
        writer.close()
        engine.dispose()
    assert translating(lambda: 7)() == 7


def test_the_retry_hint_travels_to_the_client() -> None:
    error = StorageUnavailableError("the job store is unavailable", retry_after_s=2.0)
    assert status_code_for(error) == grpc.StatusCode.UNAVAILABLE
    rich = error_to_rich_status(error)
    back = error_from_status(grpc.StatusCode.UNAVAILABLE, rich.message, rich)
    assert isinstance(back, UnavailableError) and back.retry_after_s == 2.0
