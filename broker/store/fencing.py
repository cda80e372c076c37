"""The in-transaction check that guards fenced writes: is this still the lease's live token?"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from broker.store import tables
from broker.store.protocol import Fence


def fence_holds(connection: Connection, fence: Fence, now_unix_ms: int) -> bool:
    """True if `fence.token` is still the live token of its lease, read inside the caller's
    transaction (with a shared row lock on PostgreSQL, so a takeover waits for this write)."""
    leases = tables.leases
    query = select(leases.c.fencing_token, leases.c.expires_unix_ms).where(
        leases.c.name == fence.lease
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = connection.execute(query).first()
    return row is not None and int(row[0]) == fence.token and int(row[1]) > now_unix_ms
