"""The broker's durable store: the Store contract and its SQL implementation, opened by URL."""

from __future__ import annotations

from collections.abc import Callable

from broker.store.engine import create_store_engine
from broker.store.migrate import upgrade_to_head
from broker.store.protocol import (
    Fence,
    FenceLostError,
    Hold,
    JobFilter,
    NewJob,
    Page,
    SiteRecord,
    Store,
    SubmitOutcome,
    Transition,
)
from broker.store.sql import SqlStore, wall_clock_ms

__all__ = [
    "Fence",
    "FenceLostError",
    "Hold",
    "JobFilter",
    "NewJob",
    "Page",
    "SiteRecord",
    "SqlStore",
    "Store",
    "SubmitOutcome",
    "Transition",
    "open_store",
]


def open_store(url: str, *, clock: Callable[[], int] = wall_clock_ms) -> SqlStore:
    """Open the store at `url`, creating or upgrading its schema to the newest revision.

    `url` is a SQLAlchemy URL: `sqlite:///path.db` (WAL, synchronous=FULL), `sqlite://`
    for a private in-memory database, or `postgresql+psycopg://user@host:port/db`.
    """
    engine = create_store_engine(url)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlStore(engine, clock=clock)
