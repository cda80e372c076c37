"""Alembic environment of the broker store: runs migrations on the connection it is handed."""

from __future__ import annotations

from alembic import context


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("store migrations run through broker.store.migrate.upgrade_to_head")
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported by the broker store")
_run_online()
