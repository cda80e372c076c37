"""The change feed: PostgreSQL notifies it when job events commit, from this process or the
submission process, never for a rolled back write; SQLite's feed only times out."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from broker.store import ChangeFeed, SqlStore, Transition, open_store
from broker.store.engine import create_store_engine, writer
from broker.store.submission import Submission
from broker.store.submit import write_batch
from broker.store.submit_process import SubmitProcess
from computenet.types import JobState
from tests.store.factories import FakeClock, new_job
from tests.support.waiting import wait_for

WAKE_TIMEOUT_S = 30.0
"""Bounds a wait that must be woken: only reached if the notification never comes."""
QUIET_S = 0.3
"""How long a wait that must not be woken listens."""

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pg_url(postgres_db_url: str) -> str:
    """A migrated PostgreSQL database."""
    open_store(postgres_db_url).close()
    return postgres_db_url


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlStore]:
    with open_store(pg_url, clock=FakeClock()) as store:
        yield store


@pytest.fixture
def feed(pg_url: str) -> Iterator[ChangeFeed]:
    """A feed listening before the test writes anything."""
    with ChangeFeed(pg_url) as opened:
        yield opened


def _submit(store: SqlStore, job_id: str) -> None:
    [outcome] = store.submit_jobs([new_job(job_id)])
    assert outcome.job is not None and not outcome.duplicate


@pytest.mark.postgres
def test_a_feed_with_nothing_committed_times_out(feed: ChangeFeed) -> None:
    assert feed.listening
    assert feed.wait(QUIET_S) is False


@pytest.mark.postgres
def test_a_submit_wakes_the_feed_once(feed: ChangeFeed, pg_store: SqlStore) -> None:
    _submit(pg_store, "j1")
    _submit(pg_store, "j2")
    assert feed.wait(WAKE_TIMEOUT_S) is True
    assert feed.wait(QUIET_S) is False, "both commits were reported by the first wait"


@pytest.mark.postgres
def test_an_apply_wakes_the_feed_and_a_no_op_apply_does_not(
    feed: ChangeFeed, pg_store: SqlStore
) -> None:
    _submit(pg_store, "j1")
    assert feed.wait(WAKE_TIMEOUT_S) is True
    stale = Transition("j1", JobState.RUNNING, "x", expect_states=frozenset({JobState.PLACED}))
    assert pg_store.apply([stale]) == [None]
    assert feed.wait(QUIET_S) is False, "no event recorded, nothing to notify"
    [event] = pg_store.apply([Transition("j1", JobState.CANCELLED, "cancelled")])
    assert event is not None
    assert feed.wait(WAKE_TIMEOUT_S) is True


@pytest.mark.postgres
def test_the_submission_process_wakes_the_feed(feed: ChangeFeed, pg_url: str) -> None:
    process = SubmitProcess(pg_url)
    try:
        [outcome] = asyncio.run(process.submit_jobs([new_job("child-1")]))
    finally:
        process.close()
    assert outcome.job is not None
    assert feed.wait(WAKE_TIMEOUT_S) is True


class _RolledBack(Exception):
    pass


@pytest.mark.postgres
def test_a_rolled_back_write_wakes_nobody(
    feed: ChangeFeed, pg_url: str, pg_store: SqlStore
) -> None:
    engine = create_store_engine(pg_url)
    try:
        with pytest.raises(_RolledBack), writer(engine).begin() as connection:
            written = write_batch(connection, [Submission.of(new_job("lost"))])
            assert written[0].sequence == 1, "the events were recorded, then rolled back"
            raise _RolledBack
    finally:
        engine.dispose()
    assert feed.wait(QUIET_S) is False
    assert pg_store.get_job("lost") is None  # type: ignore[arg-type]
    _submit(pg_store, "kept")
    assert feed.wait(WAKE_TIMEOUT_S) is True, "the feed still listens"


@pytest.mark.postgres
def test_the_payload_is_the_last_sequence(pg_url: str, pg_store: SqlStore) -> None:
    import psycopg

    parsed = make_url(pg_url)
    _, args = parsed.get_dialect()().create_connect_args(parsed)
    with psycopg.connect(**args, autocommit=True) as listener:
        listener.execute("LISTEN computenet_events")
        pg_store.submit_jobs([new_job("a"), new_job("b")])
        [notify] = list(listener.notifies(timeout=WAKE_TIMEOUT_S, stop_after=1))
    assert notify.payload == str(pg_store.last_sequence()) == "2"


@pytest.mark.postgres
def test_close_from_another_thread_ends_a_blocked_wait(feed: ChangeFeed) -> None:
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(feed.wait(600.0)))
    waiter.start()
    listener = feed._listener
    assert listener is not None
    wait_for(listener._io.locked, what="the wait to start")  # it holds the connection
    feed.close()
    waiter.join(timeout=WAKE_TIMEOUT_S)
    assert not waiter.is_alive() and results == [False]
    assert feed.wait(600.0) is False, "a closed feed returns at once"


@pytest.mark.postgres
def test_a_dropped_connection_is_reestablished_and_reported(
    feed: ChangeFeed, pg_url: str, pg_store: SqlStore
) -> None:
    engine = create_store_engine(pg_url)
    try:
        with engine.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query = 'LISTEN computenet_events' AND pid <> pg_backend_pid()"
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in killed] == [(True,)]
    assert feed.wait(WAKE_TIMEOUT_S) is True, "re-read: notifications may have been missed"
    assert feed.wait(QUIET_S) is False
    _submit(pg_store, "after")
    assert feed.wait(WAKE_TIMEOUT_S) is True, "listening again on the new connection"


def test_a_sqlite_feed_only_times_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store, ChangeFeed(url) as feed:
        assert not feed.listening
        _submit(store, "j1")
        assert feed.wait(0.05) is False


def test_closing_a_sqlite_feed_ends_a_blocked_wait(tmp_path: Path) -> None:
    feed = ChangeFeed(f"sqlite:///{tmp_path / 'store.db'}")
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(feed.wait(600.0)))
    waiter.start()
    feed.close()
    waiter.join(timeout=WAKE_TIMEOUT_S)
    assert not waiter.is_alive() and results == [False]


def _admin(postgres_url: str, statement: str) -> list[tuple[object, ...]]:
    """Run `statement` on the server's `postgres` database (not the test's own)."""
    engine = create_store_engine(postgres_url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_feed_that_cannot_reconnect_keeps_trying_until_it_can(
    feed: ChangeFeed, pg_url: str, postgres_url: str
) -> None:
    database = make_url(pg_url).database
    _admin(postgres_url, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        killed = _admin(
            postgres_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND query = 'LISTEN computenet_events'",
        )
        assert killed == [(True,)]
        assert feed.wait(QUIET_S) is False, "the database refuses connections for now"
        assert feed.wait(QUIET_S) is False
    finally:
        _admin(postgres_url, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert feed.wait(WAKE_TIMEOUT_S) is True, "reconnected: re-read"
