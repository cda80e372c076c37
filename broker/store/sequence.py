"""The event sequence counter, locked for a whole write transaction so numbers follow commits."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from broker.store import tables

_COUNTER = tables.meta.c.key == tables.EVENT_SEQUENCE_KEY


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
        query = select(tables.meta.c.value).where(_COUNTER).with_for_update()
        self._saved = self._last = int(connection.execute(query).scalar_one())

    def take(self) -> int:
        """The next sequence number."""
        self._last += 1
        return self._last

    def save(self) -> None:
        """Record the numbers taken; call once, before the transaction commits."""
        if self._last != self._saved:
            self._connection.execute(update(tables.meta).where(_COUNTER).values(value=self._last))
            self._saved = self._last


def read_last_sequence(connection: Connection) -> int:
    """The highest sequence number committed so far (0 if none)."""
    query = select(tables.meta.c.value).where(_COUNTER)
    return int(connection.execute(query).scalar_one())
