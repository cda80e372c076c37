"""SQLite engines opened by several processes at once on a database file that is new."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sqlalchemy import text

from broker.store.engine import create_store_engine

ROUNDS = 15
RACERS = 4


def _open_and_read(url: str, go: multiprocessing.synchronize.Event) -> None:
    go.wait()
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar()
            assert mode == "wal", mode
    finally:
        engine.dispose()


def test_racing_first_connections_all_enter_wal(tmp_path: Path) -> None:
    # Each round is a fresh file: the racers switch it from rollback journal to WAL together,
    # which SQLite answers with an immediate "database is locked" to all but one of them.
    ctx = multiprocessing.get_context("fork")
    failed: list[int] = []
    for round_no in range(ROUNDS):
        url = f"sqlite:///{tmp_path / f'race-{round_no}.db'}"
        go = ctx.Event()
        procs = [ctx.Process(target=_open_and_read, args=(url, go)) for _ in range(RACERS)]
        for proc in procs:
            proc.start()
        go.set()
        for proc in procs:
            proc.join(timeout=60)
        failed += [round_no for proc in procs if proc.exitcode != 0]
    assert failed == []
