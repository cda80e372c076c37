"""The event sequence counter, locked for a whole write transaction so numbers follow commits,
and the change notification each such transaction sends on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from broker.store import statements, tables

_COUNTER = tables.meta.c.key == tables.EVENT_SEQUENCE_KEY

EVENTS_CHANNEL = "computenet_events"
"""The PostgreSQL channel notified by every transaction that records job events; the payload
is the transaction's last sequence number as text."""


class EventSequence:
    """Hands out event sequence numbers inside one write transaction.

    Creating it locks the counter row (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the
    transaction already holds the write lock), so a concurrent writer waits until this one
    commits and then continues from its last number: sequences are committed in order even
    if more than one writer ever runs. A database SERIAL would not give that, because
    nextval() is not transactional and two writers could commit their numbers out of order.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        lock = statements.compiled(
            connection.dialect,
            "sequence:lock",
            lambda: select(tables.meta.c.value).where(_COUNTER).with_for_update(),
        )
        (row,) = lock.query(connection, {})
        self._saved = self._last = int(row["value"])

    def take(self) -> int:
        """The next sequence number."""
        self._last += 1
        return self._last

    def save(self) -> None:
        """Record the numbers taken; call once, before the transaction commits.

        On PostgreSQL this also notifies `EVENTS_CHANNEL` inside the transaction: listeners
        (other replicas, watchers) hear of the new events when it commits, and of nothing if
        it rolls back.
        """
        if self._last != self._saved:
            dialect = self._connection.dialect
            save = statements.compiled(
                dialect,
                "sequence:save",
                lambda: update(tables.meta).where(_COUNTER).values(value=bindparam("last")),
            )
            save.execute(self._connection, {"last": self._last})
            if dialect.name == "postgresql":
                notify = statements.compiled(
                    dialect,
                    "sequence:notify",
                    lambda: select(func.pg_notify(bindparam("channel"), bindparam("payload"))),
                )
                values = {"channel": EVENTS_CHANNEL, "payload": str(self._last)}
                notify.execute(self._connection, values)
            self._saved = self._last


def read_last_sequence(connection: Connection) -> int:
    """The highest sequence number committed so far (0 if none)."""
    query = select(tables.meta.c.value).where(_COUNTER)
    return int(connection.execute(query).scalar_one())
