"""Fixtures of the store tests: every contract test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.store import SqlStore, open_store
from tests.store.factories import FakeClock


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock, advanced by hand."""
    return FakeClock()


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[SqlStore]:
    """A store opened (and migrated) on `store_url`, closed after the test."""
    opened = open_store(store_url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()
