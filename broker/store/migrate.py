"""Bringing a store database to the newest schema with alembic, safely from several processes."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from broker.store.engine import writer

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "broker.store:migrations"
"""The migration scripts, shipped as package data of broker.store."""

_PG_MIGRATION_LOCK_ID = 0x636E6574_0001
"""Advisory lock key serialising migrations of one PostgreSQL database across processes."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config over the packaged scripts, optionally bound to `connection`."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the packaged scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the store has no migration scripts")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision; a no-op when already there.

    Runs in one transaction that first takes an exclusive lock (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: an advisory transaction lock), so two processes opening the same database
    at once migrate it once: the second waits, then finds it at head.
    """
    head = head_revision()
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_ID}
            )
        before = current_revision(connection)
        if before == head:
            return
        command.upgrade(alembic_config(connection), "head")
        log.info("store schema upgraded from=%s to=%s", before or "empty", head)
